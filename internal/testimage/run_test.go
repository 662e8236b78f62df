package testimage_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runIn runs the program at root/prog with root as working directory and
// returns its output.
func runIn(root, prog string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(root, prog), args...)
	cmd.Dir = root
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// runEchoServer starts the binary from the image on a loopback port, asks
// it for its health, and stops it with SIGTERM, which must exit 0.
func runEchoServer(t *testing.T, bin string) {
	t.Helper()
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("no output: %v", lines.Err())
	}
	addr, ok := strings.CutPrefix(lines.Text(), "echoserver listening on ")
	if !ok {
		t.Fatalf("first line %q", lines.Text())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v; output %s", err, rest)
	}
	if !strings.Contains(string(rest), "GET /healthz 200") {
		t.Errorf("no request log line in %q", rest)
	}
}
