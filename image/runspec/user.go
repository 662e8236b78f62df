package runspec

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/inroot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// maxDBSize bounds what is read of an image's /etc/passwd or /etc/group:
// the image is untrusted, and a directory service's export of tens of
// thousands of users is still far below it.
const maxDBSize = 16 << 20

// errNoFile is a database the root filesystem does not have.
var errNoFile = errors.New("no such file")

// rootfs reads files of a root filesystem the way the container will see
// them: every symlink and ".." resolved inside it.
type rootfs struct {
	dir string
	fd  *os.File
}

func (r *rootfs) close() {
	if r.fd != nil {
		r.fd.Close()
	}
}

// read returns the regular file at name (absolute, inside the root), or
// errNoFile if there is none.
func (r *rootfs) read(name string) ([]byte, error) {
	if r.fd == nil {
		fd, err := os.OpenFile(r.dir, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, fmt.Errorf("root filesystem: %w", err)
		}
		r.fd = fd
	}
	// Only a regular file is opened: a device node planted at the name
	// would run its driver's open on the host, a FIFO would block.
	f, err := inroot.OpenRegular(int(r.fd.Fd()), name, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if errors.Is(err, inroot.ErrNotRegular) {
		return nil, fmt.Errorf("%s in the root filesystem: not a regular file", name)
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, errNoFile
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s in the root filesystem: %w", name, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("%s in the root filesystem: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s in the root filesystem: not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxDBSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s in the root filesystem: %w", name, err)
	}
	if len(b) > maxDBSize {
		return nil, fmt.Errorf("%s in the root filesystem: larger than %d bytes", name, maxDBSize)
	}
	return b, nil
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// parsePasswd reads passwd(5) lines. A line whose ids are not numbers is
// skipped rather than read as 0: a malformed entry must not become root.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), ":")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)})
	}
	return out
}

// parseGroup reads group(5) lines, as parsePasswd does passwd's.
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), ":")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 {
			for m := range strings.SplitSeq(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out
}

// parseID reads a numeric uid or gid. (uid_t)-1 is refused: to setresuid
// and setresgid it means "leave unchanged", so a process asking for it
// would stay root.
func parseID(s string) (id uint32, numeric bool, err error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, true, fmt.Errorf("id %s is out of range", s)
		}
		return 0, false, nil
	}
	if n >= math.MaxUint32 {
		return 0, true, fmt.Errorf("id %s is out of range", s)
	}
	return uint32(n), true, nil
}

// resolveUser turns a user string as Docker takes it ("name", "uid",
// "name:group", "uid:gid", or empty for root) into the ids the process
// runs with, by the rules of Docker (which are runc's):
//
//   - a number is always an id, even where a user of that name exists; a
//     uid the image's /etc/passwd does not list runs with gid 0;
//   - a name must be in the image's /etc/passwd;
//   - without an explicit group the primary group is the passwd entry's,
//     and the supplementary groups are those that list the user by name
//     in /etc/group; an explicit group replaces the primary group and
//     takes the supplementary ones away.
//
// additionalGids starts with the primary group, as Docker's does, so that
// a runtime can never leave the process with the groups of whoever
// started it.
func resolveUser(root *rootfs, s string) (specs.User, error) {
	userPart, groupPart, _ := strings.Cut(s, ":")
	if strings.Contains(groupPart, ":") {
		return specs.User{}, errors.New(`more than one ":"; want user, user:group, uid or uid:gid`)
	}
	uidStr := userPart
	if uidStr == "" {
		uidStr = "0"
	}
	uid, uidNumeric, err := parseID(uidStr)
	if err != nil {
		return specs.User{}, err
	}
	gid, gidNumeric, err := parseID(groupPart)
	if err != nil {
		return specs.User{}, err
	}

	var name string
	// Only the primary group and the memberships come from passwd for a
	// uid: with an explicit group neither counts, and the files need not
	// exist.
	if !uidNumeric || groupPart == "" {
		b, err := root.read("/etc/passwd")
		switch {
		case errors.Is(err, errNoFile):
			if !uidNumeric {
				return specs.User{}, errors.New("no /etc/passwd in the root filesystem to look the name up in")
			}
		case err != nil:
			return specs.User{}, err
		default:
			users := parsePasswd(b)
			i := slices.IndexFunc(users, func(u passwdEntry) bool {
				if uidNumeric {
					return u.uid == uid
				}
				return u.name == userPart
			})
			switch {
			case i >= 0:
				name, uid = users[i].name, users[i].uid
				if groupPart == "" {
					gid = users[i].gid
				}
			case !uidNumeric:
				return specs.User{}, errors.New("no such user in /etc/passwd")
			}
		}
	}

	var groups []groupEntry
	if (groupPart != "" && !gidNumeric) || (groupPart == "" && name != "") {
		b, err := root.read("/etc/group")
		switch {
		case errors.Is(err, errNoFile):
			if groupPart != "" {
				return specs.User{}, fmt.Errorf("no /etc/group in the root filesystem to look group %q up in", groupPart)
			}
		case err != nil:
			return specs.User{}, err
		default:
			groups = parseGroup(b)
		}
	}

	if groupPart != "" && !gidNumeric {
		i := slices.IndexFunc(groups, func(g groupEntry) bool { return g.name == groupPart })
		if i < 0 {
			return specs.User{}, fmt.Errorf("no such group %q in /etc/group", groupPart)
		}
		gid = groups[i].gid
	}
	gids := []uint32{gid}
	if groupPart == "" {
		for _, g := range groups {
			if slices.Contains(g.members, name) && !slices.Contains(gids, g.gid) {
				gids = append(gids, g.gid)
			}
		}
	}
	return specs.User{UID: uid, GID: gid, AdditionalGids: gids}, nil
}
