package runspec

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// makeRootfs writes files (path: content) into a new root filesystem;
// content "->target" makes a symlink instead.
func makeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1::/:/bin/false
alice:x:1000:1000::/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
2000:x:3000:3000:a user whose name is a number:/:/bin/sh
broken:x:oops:0:uid not a number:/:/bin/sh
short:x:5
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`

const testGroup = `root:x:0:root
wheel:x:10:root,alice
alice:x:1000:
staff:x:50:alice, bob
bob:x:1001:bob
nogroup:x:65534:
badgid:x:nope:alice
`

type ids struct {
	uid, gid uint32
	gids     []uint32
}

func userOf(t *testing.T, rootfs, user string) (ids, error) {
	t.Helper()
	s, err := Generate(ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"sh"}, User: user}}, Options{Rootfs: rootfs})
	if err != nil {
		return ids{}, err
	}
	u := s.Process.User
	return ids{u.UID, u.GID, u.AdditionalGids}, nil
}

func checkUsers(t *testing.T, rootfs string, cases []userCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := userOf(t, rootfs, tc.user)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("user %q: got %+v, %v; want an error with %q", tc.user, got, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("user %q: %v", tc.user, err)
			continue
		}
		if got.uid != tc.want.uid || got.gid != tc.want.gid || !slices.Equal(got.gids, tc.want.gids) {
			t.Errorf("user %q: uid %d gid %d groups %v; want uid %d gid %d groups %v",
				tc.user, got.uid, got.gid, got.gids, tc.want.uid, tc.want.gid, tc.want.gids)
		}
	}
}

type userCase struct {
	user string
	want ids
	err  string
}

func TestUser(t *testing.T) {
	rootfs := makeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	checkUsers(t, rootfs, []userCase{
		// Root by default, with the groups /etc/group lists root in.
		{user: "", want: ids{0, 0, []uint32{0, 10}}},
		{user: "root", want: ids{0, 0, []uint32{0, 10}}},
		{user: "alice", want: ids{1000, 1000, []uint32{1000, 10, 50}}},
		// A number listed in passwd is that user, groups and all.
		{user: "1000", want: ids{1000, 1000, []uint32{1000, 10, 50}}},
		// Member lists with spaces; the primary group once.
		{user: "bob", want: ids{1001, 1001, []uint32{1001, 50}}},
		{user: "nobody", want: ids{65534, 65534, []uint32{65534}}},
		// An explicit group replaces the primary and takes the
		// supplementary ones away.
		{user: "alice:staff", want: ids{1000, 50, []uint32{50}}},
		{user: "alice:0", want: ids{1000, 0, []uint32{0}}},
		{user: "alice:4000", want: ids{1000, 4000, []uint32{4000}}},
		{user: "1000:1000", want: ids{1000, 1000, []uint32{1000}}},
		{user: ":staff", want: ids{0, 50, []uint32{50}}},
		{user: "alice:", want: ids{1000, 1000, []uint32{1000, 10, 50}}},
		// A number not in passwd runs with gid 0, as in Docker.
		{user: "4242", want: ids{4242, 0, []uint32{0}}},
		{user: "4242:4343", want: ids{4242, 4343, []uint32{4343}}},
		// A number is a uid even where a user has it as a name.
		{user: "2000", want: ids{2000, 0, []uint32{0}}},
		{user: "4294967294", want: ids{4294967294, 0, []uint32{0}}},

		{user: "ghost", err: `image config User "ghost": no such user in /etc/passwd`},
		// Malformed lines are skipped, not read as uid 0.
		{user: "broken", err: "no such user"},
		{user: "short", err: "no such user"},
		{user: "alice:ghosts", err: `image config User "alice:ghosts": no such group "ghosts" in /etc/group`},
		{user: "alice:badgid", err: "no such group"},
		// (uid_t)-1 would leave the process root.
		{user: "4294967295", err: "out of range"},
		{user: "1:4294967295", err: "out of range"},
		{user: "99999999999999999999", err: "out of range"},
		{user: "a:b:c", err: `more than one ":"`},
	})
}

// Numeric ids need no files; names do, and say which is missing.
func TestUserWithoutFiles(t *testing.T) {
	checkUsers(t, t.TempDir(), []userCase{
		{user: "", want: ids{0, 0, []uint32{0}}},
		{user: "123", want: ids{123, 0, []uint32{0}}},
		{user: "123:456", want: ids{123, 456, []uint32{456}}},
		{user: "nobody", err: "no /etc/passwd in the root filesystem"},
		{user: "0:wheel", err: `no /etc/group in the root filesystem to look group "wheel" up in`},
	})
	// /etc is a file: no passwd under it, not an error of its own.
	checkUsers(t, makeRootfs(t, map[string]string{"etc": "not a directory"}), []userCase{
		{user: "7", want: ids{7, 0, []uint32{0}}},
		{user: "nobody", err: "no /etc/passwd"},
	})
}

// The run's User wins over the image's, and errors say which was wrong.
func TestUserOption(t *testing.T) {
	rootfs := makeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	img := ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "ghost"}}
	s, err := Generate(img, Options{Rootfs: rootfs, User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.User.UID != 1001 {
		t.Fatalf("uid %d, want bob's 1001", s.Process.User.UID)
	}
	if _, err := Generate(img, Options{Rootfs: rootfs, User: "casper"}); err == nil ||
		err.Error() != `Options.User "casper": no such user in /etc/passwd` {
		t.Fatalf("got %v", err)
	}
	if _, err := Generate(img, Options{Rootfs: rootfs}); err == nil ||
		err.Error() != `image config User "ghost": no such user in /etc/passwd` {
		t.Fatalf("got %v", err)
	}
	// Rootfs as the bundle sees it, RootfsDir where the files are now.
	s, err = Generate(img, Options{Rootfs: "rootfs", RootfsDir: rootfs, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.Path != "rootfs" || s.Process.User.UID != 1000 {
		t.Fatalf("root %q, uid %d", s.Root.Path, s.Process.User.UID)
	}
}

// hostUser is a name from the host's /etc/passwd with its uid.
func hostUser(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Skipf("the host has no /etc/passwd to tell apart from the image's: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), ":"); ok && name != "" {
			return name
		}
	}
	t.Skip("the host's /etc/passwd lists nobody")
	return ""
}

// A symlink in the image that would lead to the host's /etc/passwd if
// followed on the host leads nowhere outside the root filesystem.
func TestUserSymlinkToHost(t *testing.T) {
	host := hostUser(t)
	// Inside the root, /etc/../../../../etc/passwd is /etc/passwd again: a
	// loop. On the host it is the host's file, where host is a user.
	rootfs := makeRootfs(t, map[string]string{"etc/passwd": "->/etc/../../../../etc/passwd"})
	for _, u := range []string{host, "0"} {
		got, err := userOf(t, rootfs, u)
		if err == nil {
			t.Fatalf("user %q resolved to %+v through a symlink out of the root: the host's /etc/passwd was read", u, got)
		}
		if !strings.Contains(err.Error(), "/etc/passwd in the root filesystem") {
			t.Fatalf("user %q: %v", u, err)
		}
	}

	// The same kind of link to a file that is in the root (and not on
	// the host): the image's users and only those.
	rootfs = makeRootfs(t, map[string]string{
		"etc/passwd": "->/etc/../../../../srv/passwd",
		"srv/passwd": "imageonly:x:4242:4343::/:/bin/sh\n",
		"etc/group":  "->../../../../../../srv/group",
		"srv/group":  "image:x:4343:\nextra:x:5000:imageonly\n",
	})
	checkUsers(t, rootfs, []userCase{
		{user: "imageonly", want: ids{4242, 4343, []uint32{4343, 5000}}},
		{user: "imageonly:extra", want: ids{4242, 5000, []uint32{5000}}},
		{user: host, err: "no such user"},
	})
}

// What is at /etc/passwd must be a regular file: a FIFO would block the
// read forever, a device could be endless.
func TestUserNotRegular(t *testing.T) {
	rootfs := makeRootfs(t, map[string]string{"etc/group": testGroup})
	if err := unix.Mkfifo(filepath.Join(rootfs, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := userOf(t, rootfs, "nobody")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "/etc/passwd in the root filesystem: not a regular file") {
			t.Fatalf("FIFO at /etc/passwd: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO at /etc/passwd blocks")
	}
	// /etc/group is a directory.
	rootfs2 := makeRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group/x": ""})
	if _, err := userOf(t, rootfs2, "alice"); err == nil || !strings.Contains(err.Error(), "/etc/group in the root filesystem: not a regular file") {
		t.Fatalf("directory at /etc/group: %v", err)
	}
}

func TestUserTooBig(t *testing.T) {
	rootfs := makeRootfs(t, map[string]string{"etc/passwd": testPasswd})
	if err := os.Truncate(filepath.Join(rootfs, "etc/passwd"), maxDBSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := userOf(t, rootfs, "nobody"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized /etc/passwd: %v", err)
	}
}
