package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func collect(t *testing.T, path string, o ReadOptions) []string {
	t.Helper()
	var out []string
	err := Read(context.Background(), path, o, nil, func(e Entry) error {
		out = append(out, e.Stream+":"+e.Log)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Lines are cut at newlines and at MaxLine, a line without its newline
// waits for the rest, and each entry keeps its stream.
func TestLinesBecomeEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	w, err := Create(path, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	out := &LineWriter{W: w, Stream: "stdout"}
	errw := &LineWriter{W: w, Stream: "stderr"}
	fmt.Fprint(out, "one\ntw")
	fmt.Fprint(errw, "oops\n")
	fmt.Fprint(out, "o\n"+strings.Repeat("x", MaxLine+10)+"\nlast")
	out.Flush()
	w.Close()
	got := collect(t, path, ReadOptions{Tail: -1})
	want := []string{"stdout:one\n", "stderr:oops\n", "stdout:two\n", "stdout:" + strings.Repeat("x", MaxLine), "stdout:xxxxxxxxxx\n", "stdout:last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("entries %q", got)
	}
	if got := collect(t, path, ReadOptions{Tail: 2}); len(got) != 2 || got[1] != "stdout:last" {
		t.Fatalf("tail 2: %q", got)
	}
	if got := collect(t, path, ReadOptions{Tail: -1, Streams: []string{"stderr"}}); len(got) != 1 {
		t.Fatalf("stderr only: %q", got)
	}
}

// Rotation keeps maxFiles files of about maxSize; reading goes through
// them oldest first, and Since drops what came before.
func TestRotationKeepsTheNewestFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.json")
	w, _ := Create(path, 400, 3)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lw := &LineWriter{W: w, Stream: "stdout", Now: func() time.Time { now = now.Add(time.Second); return now }}
	for i := range 40 {
		fmt.Fprintf(lw, "line %02d\n", i)
	}
	w.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		if st, err := os.Stat(p); err != nil || st.Size() > 400 {
			t.Fatalf("%s: %v %v", p, st, err)
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("a fourth file was kept")
	}
	got := collect(t, path, ReadOptions{Tail: -1})
	if got[len(got)-1] != "stdout:line 39\n" {
		t.Fatalf("last %q", got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order: %q", got)
		}
	}
	since := time.Date(2026, 1, 1, 0, 0, 38, 0, time.UTC)
	if got := collect(t, path, ReadOptions{Tail: -1, Since: since}); len(got) != 3 || got[0] != "stdout:line 37\n" {
		t.Fatalf("since: %q", got)
	}
}

// A follower sees every line written after it started, across
// rotations, and returns once stopped with nothing left unread.
func TestFollowAcrossRotations(t *testing.T) {
	old := PollInterval
	PollInterval = 5 * time.Millisecond
	defer func() { PollInterval = old }()
	path := filepath.Join(t.TempDir(), "log.json")
	w, _ := Create(path, 300, 5)
	lw := &LineWriter{W: w, Stream: "stdout"}
	fmt.Fprint(lw, "before\n")
	stop := make(chan struct{})
	var mu sync.Mutex
	var got []string
	done := make(chan error)
	go func() {
		done <- Read(context.Background(), path, ReadOptions{Tail: 0, Follow: true}, stop, func(e Entry) error {
			mu.Lock()
			got = append(got, e.Log)
			mu.Unlock()
			return nil
		})
	}()
	time.Sleep(20 * time.Millisecond)
	for i := range 30 {
		fmt.Fprintf(lw, "after %02d\n", i)
		if i%7 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 30 || got[0] != "after 00\n" || got[29] != "after 29\n" {
		t.Fatalf("followed %d entries: %q", len(got), got)
	}
}
