package testimage

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Applets are the busybox commands Busybox links into /bin. Every one is
// in Debian's busybox-static (1.35); a test checks that against the host's.
var Applets = []string{
	"[", "awk", "basename", "cat", "chmod", "chown", "cmp", "cp", "cut", "date", "dd", "df", "diff",
	"dirname", "du", "echo", "env", "expr", "false", "find", "free", "grep", "gunzip", "gzip", "head",
	"hostname", "id", "ifconfig", "ip", "kill", "killall", "ln", "ls", "md5sum", "mkdir", "mkfifo",
	"mknod", "mktemp", "mount", "mv", "nc", "netstat", "nproc", "nsenter", "nslookup", "od", "pidof",
	"ping", "printf", "ps", "pwd", "readlink", "realpath", "rm", "rmdir", "route", "sed", "seq",
	"setsid", "sh", "sha256sum", "sleep", "sort", "stat", "sync", "tail", "tar", "tee", "test",
	"timeout", "top", "touch", "tr", "true", "umount", "uname", "uniq", "unshare", "uptime", "wc",
	"wget", "which", "whoami", "xargs", "yes",
}

// DefaultPath is the PATH the images set.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var busyboxBinary = sync.OnceValues(func() ([]byte, error) {
	const hint = "testimage needs a static busybox: apt-get install busybox-static"
	var found []string
	if p, err := exec.LookPath("busybox"); err == nil {
		found = append(found, p)
	}
	found = append(found, "/bin/busybox", "/usr/bin/busybox")
	for _, p := range found {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		static, err := isStatic(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v; %s", p, err, hint)
		}
		if !static {
			return nil, fmt.Errorf("%s is dynamically linked and cannot run in an empty image; %s", p, hint)
		}
		return data, nil
	}
	return nil, errors.New(hint)
})

// isStatic tells whether an ELF executable needs no program interpreter,
// i.e. runs in a root filesystem that has nothing else.
func isStatic(data []byte) (bool, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// Busybox returns "berth.test/busybox:latest": one layer with the host's
// static busybox (Debian's busybox-static) as /bin/busybox, a symlink in
// /bin for each of Applets, /etc/passwd (root, nobody 65534), /etc/group,
// /tmp (1777) and /root (0700), running "sh" by default.
func Busybox() (Image, error) {
	l, err := busyboxLayer()
	if err != nil {
		return Image{}, err
	}
	return Image{
		Layers: []Layer{l},
		Config: ocispec.ImageConfig{
			Env: []string{DefaultPath},
			Cmd: []string{"sh"},
		},
		RepoTags: []string{"berth.test/busybox:latest"},
		Name:     "berth.test/busybox:latest",
	}, nil
}

func busyboxLayer() (Layer, error) {
	bin, err := busyboxBinary()
	if err != nil {
		return Layer{}, err
	}
	dir := func(p string, perm fs.FileMode) File { return File{Path: p, Mode: fs.ModeDir | perm} }
	text := func(p, s string) File { return File{Path: p, Mode: 0o644, Data: []byte(s)} }
	files := []File{
		dir("bin", 0o755), dir("dev", 0o755), dir("etc", 0o755), dir("home", 0o755),
		dir("proc", 0o555), dir("root", 0o700), dir("sys", 0o555), dir("usr/bin", 0o755),
		dir("var/tmp", 0o777|fs.ModeSticky), dir("tmp", 0o777|fs.ModeSticky),
		{Path: "bin/busybox", Mode: 0o755, Data: bytes.Clone(bin)},
		text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
		text("etc/group", "root:x:0:\nnobody:x:65534:\n"),
	}
	for _, a := range Applets {
		files = append(files, File{Path: "bin/" + a, Mode: fs.ModeSymlink, Link: "busybox"})
	}
	return Layer{Files: files, CreatedBy: "busybox-static from the host, with applet links"}, nil
}

var echoserverBinary = sync.OnceValues(func() ([]byte, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "testimage-echoserver-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "echoserver")
	// Static, and reproducible: no paths, build ID or VCS stamp that
	// would change the layer's digest between checkouts.
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=",
		"-o", out, "./test/images/echoserver")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testimage: building the echoserver: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
})

// moduleRoot finds Berth's source tree: upward from the working directory,
// then from this file's directory where the build kept source paths.
func moduleRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isBerthModule(filepath.Join(dir, "go.mod")) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("testimage: the echoserver is built from Berth's source: run inside the berth checkout")
}

func isBerthModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == "github.com/berth-dev/berth"
		}
	}
	return false
}

// EchoServer returns "berth.test/echoserver:latest": Busybox's layer with
// test/images/echoserver, built static, on top as /echoserver. It runs the
// server on port 8080, says so in ExposedPorts, stops with SIGTERM, and
// carries a healthcheck that fetches /healthz with busybox wget.
func EchoServer() (Image, error) {
	base, err := busyboxLayer()
	if err != nil {
		return Image{}, err
	}
	bin, err := echoserverBinary()
	if err != nil {
		return Image{}, err
	}
	return Image{
		Layers: []Layer{base, {
			Files:     []File{{Path: "echoserver", Mode: 0o755, Data: bytes.Clone(bin)}},
			CreatedBy: "go build ./test/images/echoserver",
		}},
		Config: ocispec.ImageConfig{
			Env:          []string{DefaultPath, "PORT=8080"},
			Entrypoint:   []string{"/echoserver"},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			StopSignal:   "SIGTERM",
		},
		Healthcheck: &Healthcheck{
			Test:     []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:${PORT:-8080}/healthz"},
			Interval: time.Second,
			Timeout:  time.Second,
			Retries:  3,
		},
		RepoTags: []string{"berth.test/echoserver:latest"},
		Name:     "berth.test/echoserver:latest",
	}, nil
}
