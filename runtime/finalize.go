package runtime

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/inroot"
	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/console"
	"github.com/berth-dev/berth/runtime/nsenter"
	"github.com/berth-dev/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// finalizeOpts are the facts about a container process beyond its spec.
type finalizeOpts struct {
	// container is the container's state: its ID, init and bundle, and
	// the status a seccomp agent is told.
	container specs.State
	pid       int    // the process, as the host sees it
	path      string // the program, resolved inside the root
	home      string // HOME, unless the process's env sets it
	keyring   bool   // join a session keyring of its own
	tty       bool
	preserve  int
	// Descriptors of the fifos in the process, or -1 (exec).
	execFifo, statusFifo int
	// chroot is the root to enter when the process is not in a mount
	// namespace whose root is the container's (exec into a container
	// without one).
	chroot string
	// startHooks are run after start, before the exec (create), with
	// startState on their stdin.
	startHooks []specs.Hook
	startState []byte
}

// finalizeAttrs encodes the process's last steps for finalize.c. All the
// work of interpreting the spec happens here, where it can fail with an
// error naming the field; the C side only applies values.
func finalizeAttrs(spec *specs.Spec, p *specs.Process, o *finalizeOpts) (a *nsenter.Attrs, agent *seccompAgent, err error) {
	a = &nsenter.Attrs{}
	for _, arg := range p.Args {
		a.String(nsenter.FArg, arg)
	}
	env := p.Env
	if _, ok := envValue(env, "HOME"); !ok {
		home := o.home
		if home == "" {
			home = "/"
		}
		env = append(env[:len(env):len(env)], "HOME="+home)
	}
	for _, e := range env {
		a.String(nsenter.FEnv, e)
	}
	a.String(nsenter.FPath, o.path)
	a.String(nsenter.FCwd, p.Cwd)
	if o.chroot != "" {
		a.String(nsenter.FChroot, o.chroot)
	}
	a.U32(nsenter.FUID, p.User.UID)
	a.U32(nsenter.FGID, p.User.GID)
	for _, g := range p.User.AdditionalGids {
		a.U32(nsenter.FGroup, g)
	}
	if p.User.Umask != nil {
		a.U32(nsenter.FUmask, *p.User.Umask)
	}
	if p.NoNewPrivileges {
		a.Flag(nsenter.FNoNewPrivs)
	}
	var c specs.LinuxCapabilities
	if p.Capabilities != nil {
		c = *p.Capabilities
	}
	var masks []byte
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
		masks = binary.LittleEndian.AppendUint64(masks, caps.Mask(set))
	}
	a.Add(nsenter.FCaps, masks)
	a.U32(nsenter.FLastCap, uint32(caps.Last()))
	for _, rl := range p.Rlimits {
		v := binary.LittleEndian.AppendUint32(nil, uint32(config.Rlimits[rl.Type]))
		v = binary.LittleEndian.AppendUint64(v, rl.Soft)
		v = binary.LittleEndian.AppendUint64(v, rl.Hard)
		a.Add(nsenter.FRlimit, v)
	}
	if p.OOMScoreAdj != nil {
		a.String(nsenter.FOOMScoreAdj, strconv.Itoa(*p.OOMScoreAdj))
	}
	if pers := spec.Linux.Personality; pers != nil {
		v := uint64(0) // PER_LINUX
		if pers.Domain == specs.PerLinux32 {
			v = 0x0008 // PER_LINUX32
		}
		a.U64(nsenter.FPersonality, v)
	}
	if io := p.IOPriority; io != nil {
		class := map[specs.IOPriorityClass]uint32{specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3}[io.Class]
		a.U32(nsenter.FIOPrio, class<<13|uint32(io.Priority))
	}
	if s := p.Scheduler; s != nil {
		a.Add(nsenter.FSched, schedAttr(s))
	}
	if o.keyring {
		a.String(nsenter.FKeyring, "_ses."+o.container.ID)
	}
	if sc := spec.Linux.Seccomp; sc != nil {
		raw, err := seccomp.Compile(sc)
		if err != nil {
			return nil, nil, err
		}
		prog := make([]byte, 0, 8*len(raw))
		for _, ins := range raw {
			prog = binary.LittleEndian.AppendUint16(prog, ins.Op)
			prog = append(prog, ins.Jt, ins.Jf)
			prog = binary.LittleEndian.AppendUint32(prog, ins.K)
		}
		a.Add(nsenter.FSeccomp, prog)
		a.U32(nsenter.FSeccompFlags, uint32(seccomp.FlagBits(sc)))
		if seccomp.NeedsListener(sc) {
			state, err := json.Marshal(specs.ContainerProcessState{
				Version:  specs.Version,
				Fds:      []string{specs.SeccompFdName},
				Pid:      o.pid,
				Metadata: sc.ListenerMetadata,
				State:    o.container,
			})
			if err != nil {
				return nil, nil, err
			}
			a.Flag(nsenter.FSeccompListener)
			agent = &seccompAgent{path: sc.ListenerPath, state: state}
		}
	}
	if o.tty {
		a.Flag(nsenter.FTTY)
	}
	a.U32(nsenter.FPreserve, uint32(o.preserve))
	if o.execFifo >= 0 {
		a.U32(nsenter.FExecFifo, uint32(o.execFifo))
	}
	if o.statusFifo >= 0 {
		a.U32(nsenter.FStatusFifo, uint32(o.statusFifo))
	}
	if len(o.startHooks) > 0 {
		a.String(nsenter.FHookKind, "startContainer")
		hookAttrs(a, o.startHooks, o.startState)
	}
	return a, agent, nil
}

// seccompAgent is where a seccomp filter's notify descriptor goes: to the
// agent listening at path (on the host), with state as the message, as
// the runtime spec describes.
type seccompAgent struct {
	path  string
	state []byte
}

// send connects to the agent and hands it listener.
func (s *seccompAgent) send(listener *os.File) error {
	sock, err := console.Dial(s.path)
	if err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath: %w", err)
	}
	defer sock.Close()
	if err := console.SendFd(sock, string(s.state), listener); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath: send to %s: %w", s.path, err)
	}
	return nil
}

// schedAttr lays out struct sched_attr (SCHED_ATTR_SIZE_VER1).
func schedAttr(s *specs.Scheduler) []byte {
	var flags uint64
	for _, f := range s.Flags {
		flags |= config.SchedFlags[f]
	}
	b := binary.LittleEndian.AppendUint32(nil, 56)
	b = binary.LittleEndian.AppendUint32(b, config.SchedPolicies[s.Policy])
	b = binary.LittleEndian.AppendUint64(b, flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(s.Nice))
	b = binary.LittleEndian.AppendUint32(b, uint32(s.Priority))
	b = binary.LittleEndian.AppendUint64(b, s.Runtime)
	b = binary.LittleEndian.AppendUint64(b, s.Deadline)
	b = binary.LittleEndian.AppendUint64(b, s.Period)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, 1024)
}

// hookAttrs encodes hooks for the process to run.
func hookAttrs(a *nsenter.Attrs, hooks []specs.Hook, state []byte) {
	for _, h := range hooks {
		a.String(nsenter.FHookPath, h.Path)
		for _, arg := range h.Args {
			a.String(nsenter.FHookArg, arg)
		}
		for _, e := range h.Env {
			a.String(nsenter.FHookEnv, e)
		}
		if h.Timeout != nil {
			a.U32(nsenter.FHookTimeout, uint32(*h.Timeout))
		}
	}
	a.Add(nsenter.FHookState, state)
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// lookPath finds the program inside the container's root, with the
// process's own PATH, so that a missing program fails create, not start.
func lookPath(root *os.File, p *specs.Process) (string, error) {
	name := p.Args[0]
	check := func(path string) error {
		f, err := inroot.Open(root, path)
		if err != nil {
			return err
		}
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return errors.New("is a directory")
		}
		if st.Mode&0o111 == 0 {
			return errors.New("permission denied")
		}
		return nil
	}
	if strings.Contains(name, "/") {
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Cwd, path)
		}
		if err := check(path); err != nil {
			return "", fmt.Errorf("process.args[0]: exec %q: %w", name, err)
		}
		return path, nil
	}
	pathEnv, ok := envValue(p.Env, "PATH")
	if !ok {
		pathEnv = defaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = p.Cwd
		} else if !filepath.IsAbs(dir) {
			dir = filepath.Join(p.Cwd, dir)
		}
		path := filepath.Join(dir, name)
		if check(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("process.args[0]: exec %q: executable file not found in $PATH", name)
}

// passwdEntry finds a user's name and home directory in the passwd file
// under root (the container's, or the host's).
func passwdEntry(root *os.File, uid uint32) (name, home string) {
	// A regular file only: the image may have put a device there.
	f, err := inroot.OpenRegular(int(root.Fd()), "etc/passwd", unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.Split(s.Text(), ":")
		if len(parts) >= 6 && parts[2] == strconv.FormatUint(uint64(uid), 10) {
			return parts[0], parts[5]
		}
	}
	return "", ""
}
