package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run the real program as a child process: the
// test binary turns into echoserver when ECHOSERVER_MAIN is set.
func TestMain(m *testing.M) {
	if os.Getenv("ECHOSERVER_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testServer(t *testing.T) (*server, *httptest.Server, *syncBuffer) {
	log := &syncBuffer{}
	s := newServer(log)
	s.hostname = "box"
	s.environ = func() []string { return []string{"Z=last", "A=first", "M=middle"} }
	ts := httptest.NewServer(s.handler())
	t.Cleanup(ts.Close)
	return s, ts, log
}

func do(t *testing.T, method, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHandler(t *testing.T) {
	s, ts, log := testServer(t)
	checks := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/", 200, "echoserver box\n"},
		{"GET", "/env", 200, "A=first\nM=middle\nZ=last\n"},
		{"GET", "/healthz", 200, "ok"},
		{"POST", "/unhealthy", 200, "unhealthy\n"},
		{"GET", "/healthz", 500, "unhealthy\n"},
		{"POST", "/healthy", 200, "healthy\n"},
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/sleep?d=10ms", 200, "slept 10ms\n"},
		{"GET", "/sleep?d=soon", 400, ""},
		{"GET", "/sleep", 400, ""},
		{"POST", "/exit?code=300", 400, ""},
		{"POST", "/exit?code=x", 400, ""},
		{"GET", "/exit?code=1", 405, ""},
		{"POST", "/", 405, ""},
		{"GET", "/nothing", 404, ""},
		{"POST", "/exit?code=3", 200, "exiting 3\n"},
		{"POST", "/exit?code=4", 409, ""},
	}
	for _, c := range checks {
		code, body := do(t, c.method, ts.URL+c.path, nil)
		if code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, body, c.code, c.body)
		}
	}
	select {
	case code := <-s.exit:
		if code != 3 {
			t.Errorf("exit %d, want 3", code)
		}
	default:
		t.Error("POST /exit did not ask main to exit")
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != len(checks) {
		t.Errorf("%d log lines for %d requests:\n%s", len(lines), len(checks), log.String())
	}
	if !strings.Contains(lines[4], " GET /healthz 500 ") {
		t.Errorf("log line %q", lines[4])
	}
}

func TestHeaders(t *testing.T) {
	_, ts, _ := testServer(t)
	code, body := do(t, "GET", ts.URL+"/headers", http.Header{"X-Two": {"b", "a"}, "X-One": {"1"}})
	host := strings.TrimPrefix(ts.URL, "http://")
	want := "Host: " + host + "\nAccept-Encoding: gzip\nUser-Agent: Go-http-client/1.1\nX-One: 1\nX-Two: b\nX-Two: a\n"
	if code != 200 || body != want {
		t.Errorf("%d %q, want %q", code, body, want)
	}
}

// start runs the program itself on a loopback port and returns its
// address and the rest of its standard output.
func start(t *testing.T, env ...string) (*exec.Cmd, string, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-listen", "127.0.0.1:0")
	cmd.Env = append(append(os.Environ(), "ECHOSERVER_MAIN=1"), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatal("no output")
	}
	addr, ok := strings.CutPrefix(lines.Text(), "echoserver listening on ")
	if !ok {
		t.Fatalf("first line %q", lines.Text())
	}
	return cmd, "http://" + addr, lines
}

func rest(lines *bufio.Scanner) string {
	var b strings.Builder
	for lines.Scan() {
		b.WriteString(lines.Text() + "\n")
	}
	return b.String()
}

func TestSIGTERM(t *testing.T) {
	cmd, url, lines := start(t, "GREETING=hi")
	if code, body := do(t, "GET", url+"/env", nil); code != 200 || !strings.Contains(body, "\nGREETING=hi\n") {
		t.Errorf("/env: %d %q", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out := rest(lines)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(out, " GET /env 200 ") || !strings.Contains(out, "terminated, shutting down") {
		t.Errorf("output %q", out)
	}
}

func TestExitCode(t *testing.T) {
	cmd, url, lines := start(t)
	if code, body := do(t, "POST", url+"/exit?code=7", nil); code != 200 || body != "exiting 7\n" {
		t.Errorf("/exit: %d %q", code, body)
	}
	rest(lines)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("exit %v, want status 7", err)
	}
}

func TestListenDefault(t *testing.T) {
	t.Setenv("PORT", "")
	if got := defaultListen(); got != ":8080" {
		t.Errorf("without PORT: %q", got)
	}
	t.Setenv("PORT", "9000")
	if got := defaultListen(); got != ":9000" {
		t.Errorf("PORT=9000: %q", got)
	}
	if code := run([]string{"-listen", "bad address"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("bad address: status %d", code)
	}
	if code := run([]string{"-nope"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flag: status %d", code)
	}
}

// The sleep handler gives up when the client does, so a shutdown is not
// held up by a client that went away.
func TestSleepCancelled(t *testing.T) {
	_, ts, _ := testServer(t)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	start := time.Now()
	if _, err := client.Get(ts.URL + "/sleep?d=1h"); err == nil {
		t.Fatal("a one-hour sleep answered")
	}
	ts.Close() // waits for the handler
	if d := time.Since(start); d > time.Minute {
		t.Errorf("the handler slept on for %v", d)
	}
}
