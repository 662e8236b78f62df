package runtime

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/berth-dev/berth/runtime/console"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// SetSubreaper makes the calling process the reaper of orphans below it, so
// that a container init started through a forking namespace setup is
// reparented here and can be waited for.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// ExitCode turns a wait status into a shell-style exit code: the status, or
// 128 plus the signal that killed the process.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// WaitReaping waits for pid, reaping every other child that exits
// meanwhile (as a subreaper inherits the container's orphans).
func WaitReaping(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return 0, err
		}
		if got == pid {
			return ws, nil
		}
	}
}

// forwarded are the signals a foreground run or exec passes on to the
// container: the ones a terminal, a supervisor or a user sends. (Asking Go
// for every signal costs a handshake with its signal thread per signal,
// milliseconds in all, and SIGCHLD, SIGURG and SIGPIPE are the runtime's.)
var forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGTERM,
	unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGWINCH, unix.SIGPWR,
}

// SignalForwarder relays the signals this process receives to a container
// process. It is made before the container exists, so that subscribing
// overlaps with creating it; signals that arrive before Start are held and
// delivered then.
type SignalForwarder struct {
	ch    chan os.Signal
	ready chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// NewSignalForwarder starts subscribing to the forwarded signals.
func NewSignalForwarder() *SignalForwarder {
	f := &SignalForwarder{ch: make(chan os.Signal, 64), ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		signal.Notify(f.ch, forwarded...)
		close(f.ready)
	}()
	return f
}

// Start forwards to pid; SIGWINCH resizes tty instead, if one is given.
func (f *SignalForwarder) Start(pid int, tty *os.File) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		<-f.ready
		for {
			select {
			case <-f.done:
				return
			case s := <-f.ch:
				sig := s.(unix.Signal)
				if sig == unix.SIGWINCH {
					if tty != nil {
						resizeFrom(os.Stdin, tty)
					}
					continue
				}
				_ = unix.Kill(pid, sig)
			}
		}
	}()
}

// Stop ends forwarding. Signals stay subscribed (and ignored) until the
// process exits, which is what the commands using this do next.
func (f *SignalForwarder) Stop() {
	close(f.done)
	f.wg.Wait()
}

func resizeFrom(src, dst *os.File) {
	if rows, cols, err := console.Size(src); err == nil {
		_ = console.SetSize(dst, rows, cols)
	}
}

// Terminal copies between this process's stdio and a container's terminal
// master, with the local terminal in raw mode while it does.
type Terminal struct {
	master  *os.File
	restore func()
	out     sync.WaitGroup
}

// AttachTerminal starts copying. The caller calls Close after the process
// exits, which waits for the output to drain.
func AttachTerminal(master *os.File) *Terminal {
	t := &Terminal{master: master, restore: func() {}}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
			t.restore = func() { _ = term.Restore(int(os.Stdin.Fd()), st) }
		}
		resizeFrom(os.Stdin, master)
	}
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	t.out.Add(1)
	go func() {
		defer t.out.Done()
		// Reads end with EIO once the last slave descriptor closes.
		_, _ = io.Copy(os.Stdout, master)
	}()
	return t
}

// Close waits for the remaining output and restores the local terminal. A
// process that outlived the one waited for may hold the terminal open; the
// wait for the output is bounded so that it cannot hang the caller.
func (t *Terminal) Close() {
	done := make(chan struct{})
	go func() { t.out.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	t.master.Close()
	t.restore()
}
