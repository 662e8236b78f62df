package shim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/engine/logs"
	"github.com/berth-dev/berth/runtime/console"
	"golang.org/x/sys/unix"
)

// Main is the monitor process: `berth-shim DIR`, started by Launch with
// the ready pipe as fd 3. It returns the process's exit status.
func Main(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: berth-shim DIR (started by the engine)")
		return 2
	}
	ready := os.NewFile(3, "ready")
	m, err := newMonitor(args[1])
	if err == nil {
		err = m.setup()
	}
	if err != nil {
		if m != nil && m.created {
			// Created, then something of ours failed: the process
			// must not outlive a monitor that could not watch it.
			m.deleteContainer()
		}
		if ready != nil {
			json.NewEncoder(ready).Encode(response{Error: err.Error()})
		}
		return 1
	}
	json.NewEncoder(ready).Encode(response{Pid: m.pid})
	ready.Close()
	m.serve()
	return 0
}

type monitor struct {
	dir string
	cfg Config
	dfd int // the directory, for socket paths of any length

	// run serializes the runtime's commands with the reaper: a command's
	// own exit status must not be reaped by the loop that waits for the
	// container's.
	run sync.Mutex

	pid     int
	created bool           // the runtime made the container (or exec'd the process)
	stdin   io.WriteCloser // nil without Stdin
	outs    []*os.File     // stdout and stderr read ends, or the pty master
	master  *os.File
	ln      net.Listener
	logw    *logs.Writer

	mu       sync.Mutex // guards attached and exit
	attached map[*attachment]bool
	released chan struct{} // closed when output may flow (exec)
	relOnce  sync.Once
	exited   chan struct{} // closed once exit is recorded and output drained
	exit     Exit
	started  bool // guarded by run
}

func newMonitor(dir string) (*monitor, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, err
	}
	m := &monitor{dir: dir, attached: map[*attachment]bool{}, released: make(chan struct{}), exited: make(chan struct{})}
	if err := json.Unmarshal(b, &m.cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	if len(m.cfg.Runtime) == 0 || m.cfg.ID == "" || (m.cfg.Bundle == "") == (m.cfg.Process == "") {
		return nil, errors.New("config needs an id, a runtime, and a bundle or a process")
	}
	if m.dfd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, err
	}
	return m, nil
}

// path names a file of the directory by a short path that works
// however long the directory's is (a unix socket's is at most 107 bytes).
func (m *monitor) path(name string) string {
	return "/proc/self/fd/" + strconv.Itoa(m.dfd) + "/" + name
}

// setup runs the runtime's create (or exec) with the process's stdio and
// starts serving.
func (m *monitor) setup() error {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGPIPE, unix.SIGTTIN, unix.SIGTTOU)
	var err error
	if m.cfg.Log != nil {
		if m.logw, err = logs.Create(m.cfg.Log.Path, m.cfg.Log.MaxSize, m.cfg.Log.MaxFiles); err != nil {
			return fmt.Errorf("log: %w", err)
		}
	}
	args := []string{"create", "--bundle", m.cfg.Bundle}
	if m.cfg.Bundle == "" {
		args = []string{"exec", "--detach", "--process", m.cfg.Process}
	}
	cmd := m.runtime(append(args, "--pid-file", filepath.Join(m.dir, pidFile))...)
	var theirs []*os.File // the process's ends, closed here once it has them
	var console chan consoleResult
	if m.cfg.Terminal {
		sock := filepath.Join(m.dir, consoleFile)
		if len(sock) > 100 {
			tmp, err := os.MkdirTemp("", "berth-console-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			sock = filepath.Join(tmp, "sock")
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return fmt.Errorf("console socket: %w", err)
		}
		defer ln.Close()
		defer os.Remove(sock)
		console = make(chan consoleResult, 1)
		go func() { console <- receiveConsole(ln) }()
		cmd.Args = append(cmd.Args, "--console-socket", sock)
	} else {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		theirs = append(theirs, devnull)
		cmd.Stdin = devnull
		if m.cfg.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			cmd.Stdin, m.stdin = r, w
			theirs = append(theirs, r)
		}
		for _, out := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			*out = w
			theirs = append(theirs, w)
			m.outs = append(m.outs, r)
		}
	}
	cmd.Args = append(cmd.Args, m.cfg.ID)
	m.run.Lock()
	err = cmd.Run()
	m.run.Unlock()
	for _, f := range theirs {
		f.Close()
	}
	if err != nil {
		return m.runtimeError(args[0], err)
	}
	m.created = true
	b, err := os.ReadFile(filepath.Join(m.dir, pidFile))
	if err != nil {
		return fmt.Errorf("the runtime wrote no pid file: %w", err)
	}
	if m.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if console != nil {
		select {
		case c := <-console:
			if c.err != nil {
				return c.err
			}
			m.master = c.f
			m.outs = []*os.File{c.f}
			if m.cfg.Stdin {
				m.stdin = c.f
			}
		case <-time.After(10 * time.Second):
			return errors.New("the runtime sent no terminal")
		}
	}
	os.Remove(m.path(socketFile))
	if m.ln, err = net.Listen("unix", m.path(socketFile)); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if m.cfg.Bundle != "" {
		// An init's output goes to its log from the start.
		m.release()
	}
	return nil
}

type consoleResult struct {
	f   *os.File
	err error
}

func receiveConsole(ln *net.UnixListener) consoleResult {
	c, err := ln.AcceptUnix()
	if err != nil {
		return consoleResult{err: err}
	}
	defer c.Close()
	f, err := c.File()
	if err != nil {
		return consoleResult{err: err}
	}
	defer f.Close()
	master, err := console.RecvFd(f)
	return consoleResult{f: master, err: err}
}

// runtimeError is the runtime's own explanation of a failure: the last
// error of its JSON log, as containerd reads runc's.
func (m *monitor) runtimeError(op string, err error) error {
	b, _ := os.ReadFile(filepath.Join(m.dir, runtimeLog))
	msg := ""
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) == nil && e.Level == "error" && e.Msg != "" {
			msg = e.Msg
		}
	}
	if msg == "" {
		return fmt.Errorf("%s %s: %w", filepath.Base(m.cfg.Runtime[0]), op, err)
	}
	return errors.New(msg)
}

// execHold bounds how long an exited exec's output waits for its attach.
const execHold = 30 * time.Second

// release lets the output flow: to the log and to the attached.
func (m *monitor) release() {
	m.relOnce.Do(func() {
		close(m.released)
	})
}

// serve runs until the process has exited and its exit is recorded.
func (m *monitor) serve() {
	var pumps sync.WaitGroup
	for i, f := range m.outs {
		stream := Stdout + i
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			<-m.released
			m.pump(f, stream)
		}()
	}
	go m.accept()
	exit := m.reap()
	if m.cfg.Process != "" {
		// An exec's output is for its attach, which may come after a
		// quick process's exit: it is held for it (or a release), but
		// not for ever.
		select {
		case <-m.released:
		case <-time.After(execHold):
		}
	}
	// The output until its writers are gone; a process that left a
	// child holding it (in the host's PID namespace) gets two seconds.
	drained := make(chan struct{})
	go func() { pumps.Wait(); close(drained) }()
	m.release()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	if m.logw != nil {
		m.logw.Close()
	}
	m.deleteContainer()
	b, _ := json.Marshal(exit)
	// By the directory's descriptor, not its name: the engine may have
	// made the directory anew for the container's next run already.
	tmp := m.path(exitFile + ".tmp")
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, m.path(exitFile))
	}
	m.mu.Lock()
	m.exit = exit
	close(m.exited)
	for a := range m.attached {
		a.close()
	}
	m.mu.Unlock()
	// Waiters are answered by their goroutines; give them a moment
	// before the socket goes.
	time.Sleep(50 * time.Millisecond)
	m.ln.Close()
	unix.Unlinkat(m.dfd, socketFile, 0)
}

// runtime is the runtime's command for args, with its global flags and a
// JSON log whose last error explains a failure (see runtimeError).
func (m *monitor) runtime(args ...string) *exec.Cmd {
	full := append([]string{}, m.cfg.Runtime[1:]...)
	full = append(full, "--log", filepath.Join(m.dir, runtimeLog), "--log-format", "json")
	cmd := exec.Command(m.cfg.Runtime[0], append(full, args...)...)
	cmd.Dir = "/"
	return cmd
}

// deleteContainer has the runtime delete a container's init (an exec
// leaves nothing to delete, but a process that may still run).
func (m *monitor) deleteContainer() {
	if m.cfg.Bundle == "" {
		if m.pid > 0 {
			unix.Kill(m.pid, unix.SIGKILL)
		}
		return
	}
	m.run.Lock()
	defer m.run.Unlock()
	m.runtime("delete", "--force", m.cfg.ID).Run()
}

// reap waits for the process and reaps every orphan that comes to the
// monitor meanwhile; it returns the process's exit.
func (m *monitor) reap() Exit {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	t := time.NewTicker(time.Second) // in case a SIGCHLD is coalesced away
	defer t.Stop()
	for {
		m.run.Lock()
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == m.pid {
				m.run.Unlock()
				e := Exit{Pid: pid, At: time.Now().UTC()}
				switch {
				case ws.Signaled():
					e.Signal = int(ws.Signal())
					e.Code = 128 + e.Signal
				default:
					e.Code = ws.ExitStatus()
				}
				return e
			}
		}
		alive := unix.Kill(m.pid, 0) == nil
		m.run.Unlock()
		if !alive {
			// Not our child (reaped by someone else, or never ours):
			// nothing to learn of its status.
			return Exit{Pid: m.pid, Code: 255, At: time.Now().UTC()}
		}
		select {
		case <-sigs:
		case <-t.C:
		}
	}
}

// pump copies one output stream to the log and to the attached.
func (m *monitor) pump(f *os.File, stream int) {
	name := "stdout"
	if stream == Stderr {
		name = "stderr"
	}
	var lw *logs.LineWriter
	if m.logw != nil {
		lw = &logs.LineWriter{W: m.logw, Stream: name}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if lw != nil {
				lw.Write(buf[:n])
			}
			m.broadcast(stream, buf[:n])
		}
		if err != nil {
			// EOF, or EIO from a pty whose other side is gone.
			break
		}
	}
	if lw != nil {
		lw.Flush()
	}
}

func (m *monitor) broadcast(stream int, p []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a := range m.attached {
		if (stream == Stdout && a.stdout) || (stream == Stderr && a.stderr) {
			a.send(stream, p)
		}
	}
}

func (m *monitor) accept() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		go m.handle(c)
	}
}

func (m *monitor) handle(c net.Conn) {
	r := bufio.NewReader(c)
	var req request
	line, err := r.ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &req) != nil {
		c.Close()
		return
	}
	reply := func(resp response) { json.NewEncoder(c).Encode(resp) }
	switch req.Op {
	case "attach":
		m.attach(c, r, req)
		return
	case "start":
		reply(m.start())
	case "release":
		m.release()
		reply(response{})
	case "resize":
		if m.master == nil {
			reply(response{Error: "the process has no terminal"})
			break
		}
		if err := console.SetSize(m.master, req.Rows, req.Cols); err != nil {
			reply(response{Error: err.Error()})
			break
		}
		reply(response{})
	case "kill":
		reply(m.kill(req.Signal, req.All))
	case "state":
		resp := response{Pid: m.pid}
		select {
		case <-m.exited:
			resp.Exit = &m.exit
		default:
			resp.Running = true
		}
		reply(resp)
	case "wait":
		<-m.exited
		reply(response{Pid: m.pid, Exit: &m.exit})
	default:
		reply(response{Error: fmt.Sprintf("unknown op %q", req.Op)})
	}
	c.Close()
}

func (m *monitor) start() response {
	// Under run, not mu: output flows (under mu) while the runtime starts
	// the process.
	m.run.Lock()
	defer m.run.Unlock()
	if m.cfg.Bundle == "" || m.started {
		return response{Error: "already started"}
	}
	cmd := m.runtime("start", m.cfg.ID)
	if err := cmd.Run(); err != nil {
		return response{Error: m.runtimeError("start", err).Error()}
	}
	m.started = true
	return response{Pid: m.pid}
}

func (m *monitor) kill(sig int, all bool) response {
	select {
	case <-m.exited:
		return response{Error: "the process has exited"}
	default:
	}
	if m.cfg.Bundle == "" {
		// An exec's process is the monitor's own (reparented) child.
		if err := unix.Kill(m.pid, unix.Signal(sig)); err != nil {
			return response{Error: err.Error()}
		}
		return response{}
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	m.run.Lock()
	cmd := m.runtime(append(args, m.cfg.ID, strconv.Itoa(sig))...)
	out, err := cmd.CombinedOutput()
	m.run.Unlock()
	if err != nil {
		return response{Error: fmt.Sprintf("kill: %v: %s", err, strings.TrimSpace(string(out)))}
	}
	return response{}
}

// attachment is one attached client: output goes to it through a queue,
// so that a slow client never stalls the process (one that falls too far
// behind is dropped); its input goes to the process's stdin.
type attachment struct {
	c              net.Conn
	stdout, stderr bool
	framed         bool
	q              chan []byte
	once           sync.Once
	closed         bool // q is closed; guarded by the monitor's mu
}

func (a *attachment) send(stream int, p []byte) {
	var b []byte
	if a.framed {
		b = make([]byte, 8+len(p))
		b[0] = byte(stream)
		binary.BigEndian.PutUint32(b[4:], uint32(len(p)))
		copy(b[8:], p)
	} else {
		b = append([]byte(nil), p...)
	}
	if a.closed {
		return
	}
	select {
	case a.q <- b:
	default:
		a.close() // too far behind
	}
}

// close ends the queue: the client gets what is in it, then EOF. Called
// with the monitor's mu held, or once the attachment left the set.
func (a *attachment) close() { a.once.Do(func() { a.closed = true; close(a.q) }) }

func (m *monitor) attach(c net.Conn, r *bufio.Reader, req request) {
	a := &attachment{c: c, stdout: req.Stdout, stderr: req.Stderr, framed: m.master == nil, q: make(chan []byte, 1024)}
	m.mu.Lock()
	select {
	case <-m.exited:
		m.mu.Unlock()
		json.NewEncoder(c).Encode(response{Exit: &m.exit})
		c.Close()
		return
	default:
	}
	m.attached[a] = true
	m.mu.Unlock()
	json.NewEncoder(c).Encode(response{Pid: m.pid})
	// The first attach lets an exec's output flow.
	m.release()
	if req.Stdin && m.stdin != nil {
		go func() {
			io.Copy(m.stdin, r)
			if m.cfg.StdinOnce && m.master == nil {
				m.stdin.Close()
			}
		}()
	}
	for b := range a.q {
		if _, err := c.Write(b); err != nil {
			break
		}
	}
	m.mu.Lock()
	delete(m.attached, a)
	m.mu.Unlock()
	a.close()
	c.Close()
}
