package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrGone: the monitor is not running (its process exited, and with it
// the process it watched; ReadExit says how).
var ErrGone = errors.New("the monitor is gone")

// Launch starts a monitor for cfg in dir (which must exist, and be the
// monitor's alone) with the monitor binary bin (args are what goes
// before dir, e.g. ["shim"] for `berth shim DIR`), and waits until the
// runtime has created the process. It returns the process's PID, or the
// runtime's error, and leaves no monitor behind on failure.
func Launch(ctx context.Context, bin string, args []string, dir string, cfg Config) (int, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), b, 0o600); err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(bin, append(append([]string{}, args...), dir)...)
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{w}
	// A session of its own: no signal meant for the engine's process
	// group (a ^C in a terminal) reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start monitor: %w", err)
	}
	w.Close()
	// The engine reaps its monitors while it lives; after a restart
	// they are init's.
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	type result struct {
		resp response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		var resp response
		err := json.NewDecoder(r).Decode(&resp)
		got <- result{resp, err}
	}()
	select {
	case res := <-got:
		if res.err != nil {
			<-waited
			return 0, fmt.Errorf("the monitor failed before it was ready (%v)", res.err)
		}
		if res.resp.Error != "" {
			<-waited
			return 0, errors.New(res.resp.Error)
		}
		return res.resp.Pid, nil
	case <-ctx.Done():
		cmd.Process.Kill()
		<-waited
		return 0, ctx.Err()
	}
}

// Client talks to the monitor of one directory.
type Client struct {
	Dir string
}

// dial connects to the monitor's socket and sends req.
func (c Client) dial(ctx context.Context, req request) (net.Conn, *bufio.Reader, error) {
	dfd, err := unix.Open(c.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	defer unix.Close(dfd)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(dfd)+"/"+socketFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	return conn, bufio.NewReader(conn), nil
}

func (c Client) call(ctx context.Context, req request) (response, error) {
	conn, r, err := c.dial(ctx, req)
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var resp response
	if err := json.NewDecoder(r).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return resp, ctx.Err()
		}
		return resp, fmt.Errorf("%w: %v", ErrGone, err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// Start starts a container's created process.
func (c Client) Start(ctx context.Context) error {
	_, err := c.call(ctx, request{Op: "start"})
	return err
}

// Release lets an exec's output flow with nobody attached.
func (c Client) Release(ctx context.Context) error {
	_, err := c.call(ctx, request{Op: "release"})
	return err
}

// Resize sizes the process's terminal.
func (c Client) Resize(ctx context.Context, rows, cols uint16) error {
	_, err := c.call(ctx, request{Op: "resize", Rows: rows, Cols: cols})
	return err
}

// Kill signals the process (all: every process of the container).
func (c Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := c.call(ctx, request{Op: "kill", Signal: int(sig), All: all})
	return err
}

// State says whether the process runs, or how it exited.
func (c Client) State(ctx context.Context) (pid int, running bool, exit *Exit, err error) {
	resp, err := c.call(ctx, request{Op: "state"})
	if errors.Is(err, ErrGone) {
		if e, ok := ReadExit(c.Dir); ok {
			return e.Pid, false, &e, nil
		}
	}
	return resp.Pid, resp.Running, resp.Exit, err
}

// Wait waits for the process to exit. A monitor that is gone (or goes)
// without answering leaves its exit.json, which Wait reads; ErrGone if
// there is none either.
func (c Client) Wait(ctx context.Context) (Exit, error) {
	resp, err := c.call(ctx, request{Op: "wait"})
	if err == nil && resp.Exit != nil {
		return *resp.Exit, nil
	}
	if ctx.Err() != nil {
		return Exit{}, ctx.Err()
	}
	if e, ok := ReadExit(c.Dir); ok {
		return e, nil
	}
	if err == nil {
		err = ErrGone
	}
	return Exit{}, err
}

// Attach connects to the process's streams. Without a terminal the
// output comes in frames (see Stdout); with one, raw. What is written
// goes to the process's stdin (close the write side to end it). The
// connection ends when the process's output does.
func (c Client) Attach(ctx context.Context, stdin, stdout, stderr bool) (net.Conn, io.Reader, error) {
	conn, r, err := c.dial(ctx, request{Op: "attach", Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Time{})
	line, err := r.ReadBytes('\n')
	var resp response
	if err == nil {
		err = json.Unmarshal(line, &resp)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	if resp.Exit != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("the process has exited (code %d)", resp.Exit.Code)
	}
	return conn, r, nil
}
