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

// Message types on the bootstrap socket (mirrored in nsenter.c).
const (
	MsgBootstrap  uint32 = 1
	MsgUsermapReq uint32 = 2
	MsgUsermapAck uint32 = 3
	MsgPID        uint32 = 4
	MsgError      uint32 = 5
	// MsgJSON carries the Go-level conversation after the constructor is done.
	MsgJSON uint32 = 16
)

const (
	attrCloneFlags  = 1
	attrNsPath      = 2
	attrTimeOffsets = 3
)

// maxMessage bounds what either side accepts, so a confused peer cannot make
// the other allocate without limit.
const maxMessage = 16 << 20

// Join names an existing namespace to enter.
type Join struct {
	Type uintptr // a CLONE_NEW* flag
	Path string
}

// Bootstrap is what the constructor does, in this order: join the user
// namespace (or create one and wait for its ID maps), join the other
// namespaces and create the new ones, mount namespace last, then fork if the
// PID or time namespace changed.
type Bootstrap struct {
	CloneFlags  uintptr
	Joins       []Join
	TimeOffsets string // contents for /proc/self/timens_offsets
}

// Encode serializes b for the constructor.
func (b *Bootstrap) Encode() []byte {
	var out []byte
	attr := func(kind uint32, val []byte) {
		out = binary.LittleEndian.AppendUint32(out, kind)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(val)))
		out = append(out, val...)
	}
	attr(attrCloneFlags, binary.LittleEndian.AppendUint32(nil, uint32(b.CloneFlags)))
	for _, j := range b.Joins {
		v := binary.LittleEndian.AppendUint32(nil, uint32(j.Type))
		v = append(v, j.Path...)
		v = append(v, 0)
		attr(attrNsPath, v)
	}
	if b.TimeOffsets != "" {
		attr(attrTimeOffsets, []byte(b.TimeOffsets))
	}
	return out
}

// WriteMsg writes one framed message.
func WriteMsg(w io.Writer, typ uint32, data []byte) error {
	buf := make([]byte, 8, 8+len(data))
	binary.LittleEndian.PutUint32(buf[0:], typ)
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(data)))
	_, err := w.Write(append(buf, data...))
	return err
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

// ErrEarlyExit means the process closed the socket before reporting its PID.
var ErrEarlyExit = errors.New("process exited during namespace setup")

// Drive runs the parent's side of the constructor's protocol: it sends b,
// answers the request for ID maps with writeMaps (which writes them for the
// process the caller started: that is the one inside the new user namespace),
// and returns the PID of the process that will continue into Go.
func Drive(rw io.ReadWriter, b *Bootstrap, writeMaps func() error) (int, error) {
	if err := WriteMsg(rw, MsgBootstrap, b.Encode()); err != nil {
		return 0, fmt.Errorf("send bootstrap: %w", err)
	}
	for {
		typ, data, err := ReadMsg(rw)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.ECONNRESET) {
				return 0, ErrEarlyExit
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
			return 0, errors.New(string(data))
		default:
			return 0, fmt.Errorf("unexpected message type %d during namespace setup", typ)
		}
	}
}
