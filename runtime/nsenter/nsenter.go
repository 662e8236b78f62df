// Package nsenter puts a freshly started runtime process into its container's
// namespaces before the Go runtime starts.
//
// Importing the package links a C constructor (nsenter.c) into the binary.
// The constructor does nothing unless the environment variable EnvFD names a
// socket; the runtime sets it when it starts its own binary as a container
// init or exec process, then drives the constructor with the messages below.
// The same framing carries the Go-level messages that follow, so a single
// socket serves the whole start of a container process.
package nsenter

/*
#cgo CFLAGS: -Wall -Wextra -O2
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// EnvFD is the environment variable naming the bootstrap socket's descriptor.
const EnvFD = "_BERTH_INIT_FD"

// EnvFDs is the number of descriptors the process inherits on purpose
// (0 to EnvFDs-1). The constructor closes every other one before anything
// else happens: a descriptor the runtime's caller leaked must not be
// reachable through the container init's /proc/PID/fd.
const EnvFDs = "_BERTH_INIT_NFDS"

// EnvPause makes the process wait for a signal before the Go runtime starts:
// a cheap holder for a namespace that is only needed as a file.
const EnvPause = "_BERTH_PAUSE"

// Message types on the bootstrap socket (mirrored in nsenter.h).
const (
	MsgBootstrap  uint32 = 1
	MsgUsermapReq uint32 = 2
	MsgUsermapAck uint32 = 3
	MsgPID        uint32 = 4
	MsgError      uint32 = 5
	MsgOK         uint32 = 6
	MsgReady      uint32 = 7
	// MsgHooks runs hooks in the process (createContainer).
	MsgHooks uint32 = 8
	// MsgFinalize carries the process's attributes; the process applies
	// them, answers MsgReady, and goes on to exec.
	MsgFinalize uint32 = 9
	// MsgMount asks the process to mount onto the descriptor sent along.
	MsgMount uint32 = 10
	// MsgRoot hands the process the directory to make its root, when the
	// runtime could not do it for it: pivot_root moves every root in the
	// mount namespace along, but chroot (--no-pivot, or a container in the
	// host's mount namespace) only changes the caller's.
	MsgRoot uint32 = 11
	// MsgListener carries a seccomp notify descriptor from the process to
	// the runtime, which hands it on to the agent at listenerPath.
	MsgListener uint32 = 12
)

// Attributes of MsgFinalize, MsgHooks and MsgMount (mirrored in nsenter.h).
const (
	FArg             uint32 = 1
	FEnv             uint32 = 2
	FPath            uint32 = 3
	FCwd             uint32 = 4
	FUID             uint32 = 5
	FGID             uint32 = 6
	FGroup           uint32 = 7
	FUmask           uint32 = 8
	FNoNewPrivs      uint32 = 9
	FCaps            uint32 = 10
	FRlimit          uint32 = 11
	FOOMScoreAdj     uint32 = 12
	FPersonality     uint32 = 13
	FIOPrio          uint32 = 14
	FSched           uint32 = 15
	FKeyring         uint32 = 16
	FSeccomp         uint32 = 17
	FSeccompFlags    uint32 = 18
	FSeccompListener uint32 = 19
	FTTY             uint32 = 21
	FPreserve        uint32 = 22
	FExecFifo        uint32 = 23
	FStatusFifo      uint32 = 24
	FHookPath        uint32 = 25
	FHookArg         uint32 = 26
	FHookEnv         uint32 = 27
	FHookTimeout     uint32 = 28
	FHookState       uint32 = 29
	FChroot          uint32 = 30
	FLastCap         uint32 = 31
	FHookKind        uint32 = 32
	FMountSource     uint32 = 33
	FMountType       uint32 = 34
	FMountFlags      uint32 = 35
	FMountData       uint32 = 36
)

// Attrs builds a message body: (kind, length, value) records.
type Attrs struct{ b []byte }

// Add appends a raw value.
func (a *Attrs) Add(kind uint32, val []byte) {
	a.b = binary.LittleEndian.AppendUint32(a.b, kind)
	a.b = binary.LittleEndian.AppendUint32(a.b, uint32(len(val)))
	a.b = append(a.b, val...)
}

// String appends a NUL-terminated string.
func (a *Attrs) String(kind uint32, s string) { a.Add(kind, append([]byte(s), 0)) }

// U32 appends a 32-bit value.
func (a *Attrs) U32(kind uint32, v uint32) { a.Add(kind, binary.LittleEndian.AppendUint32(nil, v)) }

// U64 appends a 64-bit value.
func (a *Attrs) U64(kind uint32, v uint64) { a.Add(kind, binary.LittleEndian.AppendUint64(nil, v)) }

// Flag appends an attribute with no value.
func (a *Attrs) Flag(kind uint32) { a.Add(kind, nil) }

// Bytes is the encoded body.
func (a *Attrs) Bytes() []byte { return a.b }

// SendMsgFD writes one framed message with fd (if >= 0) attached.
func SendMsgFD(sock *os.File, typ uint32, data []byte, fd int) error {
	buf := frame(typ, data)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for len(buf) > 0 {
		n, err := unix.SendmsgN(int(sock.Fd()), buf, oob, nil, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		buf, oob = buf[n:], nil
	}
	return nil
}

// Expect reads the answer to a request: nil for want, the process's error
// for MsgError.
func Expect(r io.Reader, want uint32) error {
	typ, data, err := ReadMsg(r)
	if err != nil {
		return earlyExit(err)
	}
	switch typ {
	case want:
		return nil
	case MsgError:
		return MsgErr(data)
	}
	return fmt.Errorf("unexpected message type %d (waiting for %d)", typ, want)
}

// earlyExit turns the ways a socket reports its peer's death into
// ErrEarlyExit.
func earlyExit(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.ECONNRESET) {
		return ErrEarlyExit
	}
	return err
}

// RecvMsgFD reads one framed message and the descriptor sent with it (nil
// if none). Descriptors arrive with the header, which is where the
// process attaches them.
func RecvMsgFD(sock *os.File) (uint32, []byte, *os.File, error) {
	var hdr [8]byte
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), hdr[:], oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, nil, nil, earlyExit(err)
	}
	if n == 0 {
		return 0, nil, nil, ErrEarlyExit
	}
	var f *os.File
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil && len(msgs) > 0 {
			if fds, rerr := unix.ParseUnixRights(&msgs[0]); rerr == nil && len(fds) > 0 {
				f = os.NewFile(uintptr(fds[0]), "received")
				for _, extra := range fds[1:] {
					unix.Close(extra)
				}
			}
		}
	}
	fail := func(err error) (uint32, []byte, *os.File, error) {
		if f != nil {
			f.Close()
		}
		return 0, nil, nil, earlyExit(err)
	}
	if _, err := io.ReadFull(sock, hdr[n:]); err != nil {
		return fail(err)
	}
	typ := binary.LittleEndian.Uint32(hdr[0:])
	size := binary.LittleEndian.Uint32(hdr[4:])
	if size > maxMessage {
		return fail(fmt.Errorf("message of %d bytes exceeds the limit", size))
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(sock, data); err != nil {
		return fail(err)
	}
	return typ, data, f, nil
}

const (
	attrCloneFlags  = 1
	attrNsPath      = 2
	attrTimeOffsets = 3
	attrCgroupTasks = 4
)

// maxMessage bounds what either side accepts, so a confused peer cannot make
// the other allocate without limit.
const maxMessage = 16 << 20

// Join names an existing namespace to enter.
type Join struct {
	Type uintptr // a CLONE_NEW* flag
	Path string
}

// Bootstrap is what the constructor does, in this order: move into its
// cgroups, join the user
// namespace (or create one and wait for its ID maps), join the other
// namespaces and create the new ones, mount namespace last, then fork if the
// PID or time namespace changed.
type Bootstrap struct {
	// CgroupTasks are cgroup v1 "tasks" files the process moves itself
	// into, before anything else.
	CgroupTasks []string
	CloneFlags  uintptr
	Joins       []Join
	TimeOffsets string // contents for /proc/self/timens_offsets
}

// Encode serializes b for the constructor.
func (b *Bootstrap) Encode() []byte {
	var a Attrs
	a.U32(attrCloneFlags, uint32(b.CloneFlags))
	for _, j := range b.Joins {
		v := binary.LittleEndian.AppendUint32(nil, uint32(j.Type))
		a.Add(attrNsPath, append(append(v, j.Path...), 0))
	}
	if b.TimeOffsets != "" {
		a.Add(attrTimeOffsets, []byte(b.TimeOffsets))
	}
	for _, t := range b.CgroupTasks {
		a.String(attrCgroupTasks, t)
	}
	return a.Bytes()
}

// WriteMsg writes one framed message.
func WriteMsg(w io.Writer, typ uint32, data []byte) error {
	_, err := w.Write(frame(typ, data))
	return err
}

// frame lays out a message: a little-endian header {type, length}, then the
// payload.
func frame(typ uint32, data []byte) []byte {
	buf := make([]byte, 8, 8+len(data))
	binary.LittleEndian.PutUint32(buf[0:], typ)
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(data)))
	return append(buf, data...)
}

// ReadMsg reads one framed message.
func ReadMsg(r io.Reader) (uint32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	typ := binary.LittleEndian.Uint32(hdr[0:])
	n := binary.LittleEndian.Uint32(hdr[4:])
	if n > maxMessage {
		return 0, nil, fmt.Errorf("message of %d bytes exceeds the limit", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, err
	}
	return typ, data, nil
}

// MsgErr is the error a MsgError message carries.
func MsgErr(data []byte) error { return errors.New(string(data)) }

// ErrEarlyExit means the process closed the socket before reporting its PID.
var ErrEarlyExit = errors.New("process exited during namespace setup")

// Send starts the constructor's work; Await sees it through. Between the
// two the caller may do work of its own while the process sets up.
func Send(w io.Writer, b *Bootstrap) error {
	if err := WriteMsg(w, MsgBootstrap, b.Encode()); err != nil {
		return fmt.Errorf("send bootstrap: %w", err)
	}
	return nil
}

// Await answers the constructor's requests until it reports the PID of the
// process that goes on.
func Await(rw io.ReadWriter, writeMaps func() error) (int, error) {
	for {
		typ, data, err := ReadMsg(rw)
		if err != nil {
			if err = earlyExit(err); err == ErrEarlyExit {
				return 0, err
			}
			return 0, fmt.Errorf("read from namespace setup: %w", err)
		}
		switch typ {
		case MsgUsermapReq:
			if writeMaps == nil {
				return 0, errors.New("namespace setup asked for ID maps that were not configured")
			}
			if err := writeMaps(); err != nil {
				return 0, err
			}
			if err := WriteMsg(rw, MsgUsermapAck, nil); err != nil {
				return 0, err
			}
		case MsgPID:
			if len(data) != 4 {
				return 0, fmt.Errorf("bad PID message of %d bytes", len(data))
			}
			return int(int32(binary.LittleEndian.Uint32(data))), nil
		case MsgError:
			return 0, MsgErr(data)
		default:
			return 0, fmt.Errorf("unexpected message type %d during namespace setup", typ)
		}
	}
}
