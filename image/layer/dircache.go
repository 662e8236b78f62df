package layer

import (
	"errors"
	"fmt"
	"os"

	"github.com/berth-dev/berth/internal/inroot"
	"golang.org/x/sys/unix"
)

// dirCacheSize is how many resolved directories are kept open. Tar
// writers walk trees depth first, so consecutive entries share a parent
// or return to one a few levels up; a handful of descriptors turns most
// in-root resolutions (openat2, and os.NewFile's fcntl) into a string
// comparison.
const dirCacheSize = 8

// dirCache holds descriptors of directories resolved inside the root,
// keyed by clean relative name, most recently used first.
//
// A cached descriptor is the directory its name resolved to when it was
// cached. Removing a directory or a symlink can change what a name
// resolves to, and changing a directory's setgid bit makes a cached setgid
// wrong, so whoever does either calls invalidate. Getting a name
// evicts at most the least recently used entry, so the descriptor from
// the previous get stays open across one more get (hardlinks need two).
type dirCache struct {
	root       *os.File
	rootSetgid bool
	ents       []cachedDir
}

type cachedDir struct {
	name string
	fd   int
	// file owns fd when the descriptor came from inroot; otherwise fd is
	// closed directly.
	file *os.File
	// setgid says new entries in the directory take its group (and, for
	// directories, the setgid bit).
	setgid bool
}

func (c *dirCache) init(root *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return err
	}
	c.root = root
	c.rootSetgid = st.Mode&unix.S_ISGID != 0
	c.ents = make([]cachedDir, 0, dirCacheSize)
	return nil
}

// get returns a descriptor of the directory name resolved inside the
// root, creating missing directories (0755) if create is set. The
// descriptor belongs to the cache.
func (c *dirCache) get(name string, create bool) (fd int, setgid bool, err error) {
	if name == "." {
		return int(c.root.Fd()), c.rootSetgid, nil
	}
	for i := range c.ents {
		if c.ents[i].name == name {
			e := c.ents[i]
			copy(c.ents[1:i+1], c.ents[:i])
			c.ents[0] = e
			return e.fd, e.setgid, nil
		}
	}
	var f *os.File
	if create {
		f, err = inroot.MkdirAll(c.root, name)
	} else {
		f, err = inroot.Open(c.root, name)
	}
	if err != nil {
		return -1, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return -1, false, fmt.Errorf("%s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Close()
		return -1, false, &os.PathError{Op: "open", Path: name, Err: unix.ENOTDIR}
	}
	e := cachedDir{name: name, fd: int(f.Fd()), file: f, setgid: st.Mode&unix.S_ISGID != 0}
	c.push(e)
	return e.fd, e.setgid, nil
}

// put caches fd, which the cache then owns, as the directory name.
func (c *dirCache) put(name string, fd int, setgid bool) {
	for i := range c.ents {
		if c.ents[i].name == name {
			c.ents[i].release()
			c.ents = append(c.ents[:i], c.ents[i+1:]...)
			break
		}
	}
	c.push(cachedDir{name: name, fd: fd, setgid: setgid})
}

func (c *dirCache) push(e cachedDir) {
	if len(c.ents) == dirCacheSize {
		c.ents[len(c.ents)-1].release()
		c.ents = c.ents[:len(c.ents)-1]
	}
	c.ents = append(c.ents, cachedDir{})
	copy(c.ents[1:], c.ents)
	c.ents[0] = e
}

// invalidate closes every cached descriptor but keep's. Removing a
// directory's child cannot change what that directory is, so the caller
// keeps the parent it is working in.
func (c *dirCache) invalidate(keep string) {
	n := 0
	for _, e := range c.ents {
		if e.name == keep {
			c.ents[n] = e
			n++
			continue
		}
		e.release()
	}
	clear(c.ents[n:])
	c.ents = c.ents[:n]
}

func (c *dirCache) close() {
	c.invalidate("")
}

func (e *cachedDir) release() {
	if e.file != nil {
		e.file.Close()
		return
	}
	unix.Close(e.fd)
}

// errNotFound reports, for a lookup that does not create, whether the
// name is simply absent (or runs through a non-directory).
func errNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}
