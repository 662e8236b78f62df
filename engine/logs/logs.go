// Package logs writes and reads a container's output as Docker's
// json-file driver does: one JSON object per line, {"log": "...\n",
// "stream": "stdout", "time": "..."}, in a file rotated by size into
// name.1, name.2, ... (the oldest has the highest number).
//
// The monitor process (engine/shim) writes; the engine reads, following
// the file across rotations while the container runs.
package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Entry is one line (or, for a line longer than MaxLine, one piece of it)
// of a stream.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// MaxLine is the longest entry: longer lines are split (the pieces but
// the last have no trailing newline), as Docker does at 16 KiB.
const MaxLine = 16 << 10

// Writer appends entries to a log file, rotating it when it would grow
// past MaxSize. Its methods are safe for concurrent use: stdout and
// stderr write from goroutines of their own.
type Writer struct {
	path     string
	maxSize  int64 // 0: no rotation
	maxFiles int   // files kept, the current one included (>= 1)
	mu       sync.Mutex
	f        *os.File
	size     int64
	buf      []byte
}

// Create opens (appending to) the log at path. maxSize 0 never rotates;
// maxFiles below 1 is 1 (the file is truncated when full).
func Create(path string, maxSize int64, maxFiles int) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{path: path, maxSize: maxSize, maxFiles: max(maxFiles, 1), f: f, size: st.Size()}, nil
}

// Write logs one entry.
func (w *Writer) Write(e Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return os.ErrClosed
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	return err
}

// rotate shifts path.N-1 to path.N ... path to path.1 and starts an empty
// path; with maxFiles 1 it truncates.
func (w *Writer) rotate() error {
	if w.maxFiles == 1 {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		w.size = 0
		return nil
	}
	for i := w.maxFiles - 1; i >= 1; i-- {
		from := w.path
		if i > 1 {
			from = w.path + "." + strconv.Itoa(i-1)
		}
		if err := os.Rename(from, w.path+"."+strconv.Itoa(i)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w.f.Close()
	w.f, w.size = f, 0
	return nil
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// LineWriter cuts a stream into entries at newlines (and at MaxLine),
// stamping each with the time its first byte arrived.
type LineWriter struct {
	W      *Writer
	Stream string
	// Now is the clock (nil: time.Now).
	Now     func() time.Time
	pending []byte
	since   time.Time
}

// Write logs every complete line of p and keeps the rest for later.
func (l *LineWriter) Write(p []byte) (int, error) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	n := len(p)
	for len(p) > 0 {
		if len(l.pending) == 0 {
			l.since = now().UTC()
		}
		i := bytes.IndexByte(p, '\n')
		room := MaxLine - len(l.pending)
		switch {
		case i >= 0 && i < room:
			l.pending = append(l.pending, p[:i+1]...)
			p = p[i+1:]
		case len(p) >= room:
			l.pending = append(l.pending, p[:room]...)
			p = p[room:]
		default:
			l.pending = append(l.pending, p...)
			return n, nil
		}
		if err := l.W.Write(Entry{Log: string(l.pending), Stream: l.Stream, Time: l.since}); err != nil {
			return n - len(p), err
		}
		l.pending = l.pending[:0]
	}
	return n, nil
}

// Flush logs what is left of an unfinished line.
func (l *LineWriter) Flush() error {
	if len(l.pending) == 0 {
		return nil
	}
	err := l.W.Write(Entry{Log: string(l.pending), Stream: l.Stream, Time: l.since})
	l.pending = l.pending[:0]
	return err
}
