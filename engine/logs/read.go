package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ReadOptions choose what Read returns.
type ReadOptions struct {
	// Tail is how many of the last entries to start with (< 0: all).
	Tail int
	// Since and Until bound the entries' times (zero: unbounded).
	Since, Until time.Time
	// Follow keeps reading as the log grows, across rotations, until
	// the stop channel given to Read is closed.
	Follow bool
	// Streams to return ("stdout", "stderr"); none means all.
	Streams []string
}

// PollInterval is how often a followed log is checked for more.
var PollInterval = 100 * time.Millisecond

// Read calls fn with the entries of the log at path (and its rotated
// files, the oldest first) that o asks for. With o.Follow it then waits
// for more until stop is closed (the container exited: what is left is
// read first) or ctx is done. An error from fn ends it with that error.
func Read(ctx context.Context, path string, o ReadOptions, stop <-chan struct{}, fn func(Entry) error) error {
	want := func(e Entry) bool {
		if !o.Since.IsZero() && e.Time.Before(o.Since) {
			return false
		}
		if !o.Until.IsZero() && e.Time.After(o.Until) {
			return false
		}
		if len(o.Streams) == 0 {
			return true
		}
		for _, s := range o.Streams {
			if s == e.Stream {
				return true
			}
		}
		return false
	}
	// The rotated files, then the current one, which is kept open to
	// follow.
	var files []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	cur, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) || !o.Follow {
			return err
		}
	}
	if cur != nil {
		defer func() { cur.Close() }()
	}
	var ring []Entry // the last o.Tail entries, when tailing
	emit := func(e Entry) error {
		if !want(e) {
			return nil
		}
		if o.Tail < 0 {
			return fn(e)
		}
		if o.Tail == 0 {
			return nil
		}
		if len(ring) == o.Tail {
			ring = ring[1:]
		}
		ring = append(ring, e)
		return nil
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue // rotated away meanwhile
		}
		_, err = readEntries(bufio.NewReader(f), nil, emit)
		f.Close()
		if err != nil {
			return err
		}
	}
	var r *bufio.Reader
	var partial []byte
	if cur != nil {
		r = bufio.NewReader(cur)
		if partial, err = readEntries(r, nil, emit); err != nil {
			return err
		}
	}
	for _, e := range ring {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	live := func(e Entry) error {
		if want(e) {
			return fn(e)
		}
		return nil
	}
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		stopped := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			stopped = true
		case <-t.C:
		}
		if cur != nil {
			if partial, err = readEntries(r, partial, live); err != nil {
				return err
			}
		}
		// Rotated (or created): finish the old file, then the files
		// rotated after it (several rotations may come between two
		// looks), and go on with the new one.
		if st, err := os.Stat(path); err == nil && (cur == nil || !sameFile(cur, st)) {
			// The new current file is opened before the rotated ones
			// are listed: a rotation between the two then only makes
			// it one of them, which the listing leaves to it.
			next, nextErr := os.Open(path)
			if cur != nil {
				if _, err = readEntries(r, partial, live); err != nil {
					if next != nil {
						next.Close()
					}
					return err
				}
				for _, p := range rotatedBetween(path, cur, next) {
					f, err := os.Open(p)
					if err != nil {
						continue
					}
					_, err = readEntries(bufio.NewReader(f), nil, live)
					f.Close()
					if err != nil {
						return err
					}
				}
				cur.Close()
			}
			if cur, err = next, nextErr; err != nil {
				cur = nil
				continue
			}
			r, partial = bufio.NewReader(cur), nil
			if partial, err = readEntries(r, nil, live); err != nil {
				return err
			}
		}
		if stopped {
			return nil
		}
	}
}

// rotatedBetween lists the rotated files newer than old (which is now
// one of them, or gone) and older than next (the current file when the
// rotation was seen, which may have been rotated since), the oldest
// first. A rotation during the listing shifts files to higher numbers,
// so a file may be met twice (it is listed once) but none is passed.
func rotatedBetween(path string, old, next *os.File) []string {
	var newer []string
	seen := map[[2]uint64]bool{}
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		st, err := os.Stat(p)
		if err != nil {
			// old was rotated out of the files kept: what it missed
			// is partly lost, read what is there.
			return newer
		}
		if sameFile(old, st) {
			return newer
		}
		if next != nil && sameFile(next, st) {
			newer, seen = nil, map[[2]uint64]bool{} // all newer than next
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			id := [2]uint64{uint64(sys.Dev), sys.Ino}
			if seen[id] {
				continue
			}
			seen[id] = true
		}
		newer = append([]string{p}, newer...)
	}
}

func sameFile(f *os.File, st os.FileInfo) bool {
	fst, err := f.Stat()
	if err != nil {
		return false
	}
	a, ok1 := fst.Sys().(*syscall.Stat_t)
	b, ok2 := st.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ino == b.Ino && a.Dev == b.Dev
}

// readEntries decodes the lines r has, starting with partial (a line cut
// by EOF before), and returns what is left of an unfinished last line.
// Lines that are not entries (a torn write after a crash) are skipped.
func readEntries(r *bufio.Reader, partial []byte, fn func(Entry) error) ([]byte, error) {
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return partial, nil
			}
			return partial, err
		}
		var e Entry
		if json.Unmarshal(bytes.TrimSpace(partial), &e) == nil {
			if err := fn(e); err != nil {
				return nil, err
			}
		}
		partial = partial[:0]
	}
}
