// Package layer applies OCI image layers (tar streams with the whiteout
// conventions of the image-spec's layer.md) to a directory.
//
// Two snapshotters use it. An overlayfs snapshotter unpacks each layer alone
// into an empty directory that becomes an overlayfs lower or upper layer, so
// whiteouts are converted to the form overlayfs understands (Options.Overlay).
// A copying snapshotter applies layers one over another in one directory, so
// whiteouts delete what the lower layers put there.
//
// A layer is untrusted input. Nothing it contains may create, change or
// delete anything outside the target directory, whatever the entry names,
// link targets, symlinks (in this layer or in lower ones) and whiteouts say.
// Every parent directory is resolved by the kernel inside the target
// (openat2 with RESOLVE_IN_ROOT, through internal/inroot), so ".." and
// symlinks, absolute ones included, resolve as they would for a container
// whose root is the directory; the last component of a name is then created,
// replaced or removed relative to that parent's descriptor without ever
// following a symlink.
//
// Names are interpreted as follows:
//   - A leading "/" is ignored: "/etc/passwd" is "etc/passwd" in the layer.
//     Tar writers differ on this prefix, and inside a layer both mean the same.
//   - A name whose ".." components climb above the layer's root (after
//     lexical cleaning, "a/../../x") is refused: tar writers do not produce
//     them, so the layer is broken or hostile.
//   - Hardlink targets follow the same rules and must name something that
//     already exists in the directory (in this layer, or in a lower one when
//     layers are applied one over another); a hardlink to a directory, to a
//     missing file or to a name outside the layer is an error.
//   - Names longer than PATH_MAX are refused; no process could open them
//     by name.
//   - Directories that entries need but the tar does not list are created
//     0755 root:root. A parent reached through a symlink is used, inside the
//     directory, if it exists; if the symlink's target is missing, nothing
//     is created through it and the entry is an error. In overlay mode an
//     unlisted directory hides the attributes of the lower layers' one, as
//     in every overlayfs snapshotter: tar writers list the directories of
//     the entries they write.
//   - Entries whose name has a component starting with ".wh..wh." (other than
//     the opaque marker) are AUFS bookkeeping from old Docker exports and are
//     skipped. Any other component starting with ".wh." in a directory part
//     of a name is an error: whiteouts are files, never directories.
//
// Owners are the header's numeric uid and gid; user and group names are
// ignored, since the image's /etc/passwd, not the host's, gives them
// meaning. Modes keep setuid, setgid and sticky; times are set for every
// entry, symlinks included, and for directories after everything in them
// is written. Xattrs come from PAX "SCHILY.xattr." records. Creating
// device nodes, giving files away and setting trusted.* or
// security.capability xattrs need root, which the snapshotters have.
package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// DefaultMaxBytes bounds the regular-file content of a layer when
	// Options.MaxBytes is 0: 64 GiB, far above real image layers, yet a
	// decompression bomb stops there rather than at a full disk.
	DefaultMaxBytes int64 = 64 << 30
	// DefaultMaxEntries bounds the number of tar entries when
	// Options.MaxEntries is 0: 4Mi entries, far more than real layers
	// hold, while bounding the inodes and the bookkeeping memory (a few
	// hundred bytes an entry) a layer can cost.
	DefaultMaxEntries = 4 << 20
)

// ErrLimit is wrapped by the error returned when a layer exceeds
// Options.MaxBytes or Options.MaxEntries.
var ErrLimit = errors.New("layer exceeds a limit")

// Options says how a layer is applied.
type Options struct {
	// Overlay is set when dir holds only this layer, as an overlayfs
	// upper or lower directory: a whiteout ".wh.NAME" becomes a 0/0
	// character device NAME and an opaque marker ".wh..wh..opq" becomes
	// the xattr trusted.overlay.opaque=y on its directory.
	//
	// Otherwise dir already holds the lower layers' content and whiteouts
	// delete: ".wh.NAME" removes NAME (recursively) and ".wh..wh..opq"
	// removes everything in its directory that this same layer did not
	// put there.
	//
	// In both modes a whiteout applies to lower layers only, whatever the
	// order of the entries in the tar: a layer with ".wh.X" and X keeps its
	// X, and if X is a directory nothing of the lower layers' X shows
	// (in overlay mode X gets the opaque xattr).
	Overlay bool
	// MaxBytes bounds the total size of regular-file content, counted from
	// each entry's declared size before any of it is read, plus any data
	// after the end of the tar archive. 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries bounds the number of tar entries. 0 means
	// DefaultMaxEntries.
	MaxEntries int
	// Lowers are, in overlay mode, the directories of the layers below,
	// nearest first. A hardlink to a file that only a lower layer has (a
	// layer made by linking to a file its base already had) copies that
	// file up into this layer and links to the copy, as overlayfs itself
	// would have. Without Lowers such a link is ErrLinkBelow.
	Lowers []string
	// Literal takes names as they are: ".wh." is no whiteout, ".wh..wh."
	// no bookkeeping. For archives that are no layers (docker cp's into a
	// container), where such a name is just a file's.
	Literal bool
}

// ErrLinkBelow: a hardlink's target is in none of the layer's own files,
// and no lower layers were given to find it in.
var ErrLinkBelow = errors.New("hardlink target does not exist in this layer")

// Stats describes an applied layer.
type Stats struct {
	Entries int   // tar entries read, whiteouts and skipped ones included
	Bytes   int64 // regular-file content written
}

// copyBufSize is the copy buffer: large files go to disk in few writes,
// and one buffer serves the whole layer.
const copyBufSize = 1 << 20

// pathMax is Linux's PATH_MAX, counting the terminating NUL.
const pathMax = 4096

// Apply unpacks the uncompressed tar stream r into dir, which must exist.
//
// Apply reads r to its end, past the tar's end-of-archive marker, so that a
// digester wrapping r (io.TeeReader into a sha256 hash) computes the layer's
// diffID over the whole stream, and so that a decompressor under r reports
// a truncated or corrupt stream; ApplyCompressed does both. The data after
// the archive's end is not interpreted but counts against MaxBytes.
//
// Apply does not fsync: the caller syncs the filesystem once, if it needs to,
// rather than paying for it per file. On error Apply returns at once and dir
// is left half-written; the caller throws it away.
func Apply(dir string, r io.Reader, o Options) (Stats, error) {
	maxBytes, maxEntries := o.MaxBytes, o.MaxEntries
	if maxBytes < 0 || maxEntries < 0 {
		return Stats{}, fmt.Errorf("apply layer: negative limit (MaxBytes %d, MaxEntries %d)", maxBytes, maxEntries)
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxEntries == 0 {
		maxEntries = DefaultMaxEntries
	}
	// O_RDONLY rather than O_PATH: the root is also the target of the
	// entry "./", whose owner, mode and xattrs are set through this fd.
	root, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("apply layer: %w", err)
	}
	a := &applier{
		root:       root,
		overlay:    o.Overlay,
		literal:    o.Literal,
		maxBytes:   maxBytes,
		maxEntries: maxEntries,
		euid:       unix.Geteuid(),
		egid:       unix.Getegid(),
		dirTimes:   make(map[string]int),
		lowers:     o.Lowers,
	}
	if !a.overlay {
		a.ours = make(map[string]struct{})
	}
	defer a.close()
	if err := a.dirs.init(root); err != nil {
		return Stats{}, fmt.Errorf("apply layer: %w", err)
	}
	err = a.apply(r)
	return a.stats, err
}

// applier is the state of one Apply.
type applier struct {
	root       *os.File
	dirs       dirCache
	overlay    bool
	literal    bool
	maxBytes   int64
	maxEntries int
	stats      Stats
	buf        []byte

	// A new file belongs to the creating process's fsuid and fsgid
	// (Berth does not change them from euid and egid), or to the parent's
	// group under a setgid parent; when that is what the header asks for,
	// the chown is skipped. Most files in most images are 0:0.
	euid, egid int

	// dirTimes maps a directory's name to its index in dirTimeList.
	// Directory times are set after every entry is written, because
	// writing into a directory changes its mtime.
	dirTimes    map[string]int
	dirTimeList []dirTime

	lowers []string
	// copiedUp are the files copied up from lower layers for hardlinks:
	// not this layer's own, so a whiteout of the same name still hides
	// them.
	copiedUp map[string]bool

	// ours holds, when applying over lower layers, every name this
	// layer created plus their ancestors: whiteouts and opaque markers
	// must spare them.
	ours map[string]struct{}

	// whiteouts waits, in overlay mode, for the layer's own entries.
	whiteouts []pendingWhiteout
}

type dirTime struct {
	name  string
	times [2]unix.Timespec
	live  bool
}

func (a *applier) close() {
	a.dirs.close()
	a.root.Close()
}

func (a *applier) apply(r io.Reader) error {
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// Next returns ErrInsecurePath (with a usable header) for names
		// like "../x" when GODEBUG=tarinsecurepath=0: entry() decides
		// about such names itself.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return fmt.Errorf("read layer after %d entries: %w", a.stats.Entries, err)
		}
		a.stats.Entries++
		if a.stats.Entries > a.maxEntries {
			return fmt.Errorf("%w: MaxEntries: more than %d entries", ErrLimit, a.maxEntries)
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	if cr.n == 0 {
		// Go's tar reader takes an empty stream for an empty archive, but
		// even an empty layer is 1024 bytes of end-of-archive marker; an
		// empty blob is a failed download or a bug upstream.
		return errors.New("apply layer: empty stream, not a tar archive")
	}
	rest := a.maxBytes - a.stats.Bytes
	n, err := io.Copy(io.Discard, io.LimitReader(cr, min(rest, math.MaxInt64-1)+1))
	if err != nil {
		return fmt.Errorf("read layer after the end of the archive: %w", err)
	}
	if n > rest {
		return fmt.Errorf("%w: MaxBytes: more than %d bytes (data after the end of the archive)", ErrLimit, a.maxBytes)
	}
	if err := a.finishWhiteouts(); err != nil {
		return err
	}
	return a.setDirTimes()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

const (
	whiteoutPrefix = ".wh."
	// aufsMetaPrefix starts the names AUFS kept its own bookkeeping under
	// (".wh..wh.plnk", ".wh..wh.aufs"); old Docker exports carry them.
	aufsMetaPrefix = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
)

// cleanName turns a tar name into a clean relative path ("." for the root).
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errors.New("name climbs out of the layer")
	}
	if len(p) >= pathMax {
		return "", fmt.Errorf("name is %d bytes, longer than PATH_MAX", len(p))
	}
	return p, nil
}

// split returns p's parent and last component; the root's parent is itself.
func split(p string) (parent, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

func join(parent, base string) string {
	if parent == "." {
		return base
	}
	return parent + "/" + base
}

// whiteoutDir finds the first directory component of parent that starts
// with ".wh.".
func whiteoutDir(parent string) (string, bool) {
	if !strings.HasPrefix(parent, whiteoutPrefix) && !strings.Contains(parent, "/"+whiteoutPrefix) {
		return "", false
	}
	for c := range strings.SplitSeq(parent, "/") {
		if strings.HasPrefix(c, whiteoutPrefix) {
			return c, true
		}
	}
	return "", false
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		// archive/tar hands PAX global headers over as entries; they hold
		// defaults for later headers, which it has applied already.
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	parent, base := split(name)
	if c, ok := whiteoutDir(parent); ok && !a.literal {
		if strings.HasPrefix(c, aufsMetaPrefix) {
			return nil
		}
		return fmt.Errorf("directory %q has a whiteout's name", c)
	}
	if strings.HasPrefix(base, whiteoutPrefix) && !a.literal {
		return a.whiteout(hdr.Name, parent, base)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return errors.New("only a directory can stand for the layer's root")
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.dir(name, parent, base, hdr)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		// archive/tar presents sparse files expanded, holes as zeros;
		// POSIX says to treat contiguous files as regular ones.
		err = a.file(name, parent, base, hdr, tr)
	case tar.TypeSymlink:
		err = a.symlink(name, parent, base, hdr)
	case tar.TypeLink:
		err = a.hardlink(name, parent, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = a.node(name, parent, base, hdr)
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	a.markOurs(name)
	return nil
}

// markOurs records, when applying over lower layers, that p and its
// ancestors come from this layer. Ancestors are always recorded with a
// name, so the walk up stops at the first name already there.
func (a *applier) markOurs(p string) {
	if a.ours == nil {
		return
	}
	for p != "." {
		if _, ok := a.ours[p]; ok {
			return
		}
		a.ours[p] = struct{}{}
		p, _ = split(p)
	}
}

func (a *applier) isOurs(p string) bool {
	_, ok := a.ours[p]
	return ok
}

func (a *applier) recordDirTime(name string, ts [2]unix.Timespec) {
	if i, ok := a.dirTimes[name]; ok {
		a.dirTimeList[i].times = ts
		a.dirTimeList[i].live = true
		return
	}
	a.dirTimes[name] = len(a.dirTimeList)
	a.dirTimeList = append(a.dirTimeList, dirTime{name: name, times: ts, live: true})
}

// forgetDirTime drops the time recorded for a directory that is being
// replaced. The records of directories below it stay: at the end they
// find nothing, or a directory a later entry made by the same name, which
// gets its own header's time if it had one.
func (a *applier) forgetDirTime(name string) {
	if i, ok := a.dirTimes[name]; ok {
		a.dirTimeList[i].live = false
	}
}

func (a *applier) setDirTimes() error {
	for _, d := range a.dirTimeList {
		if !d.live {
			continue
		}
		parent, base := split(d.name)
		if d.name == "." {
			base = "."
		}
		pfd, _, err := a.dirs.get(parent, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set times of directory %q: %w", d.name, err)
		}
		err = unix.UtimesNanoAt(pfd, base, d.times[:], unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times of directory %q: %w", d.name, err)
		}
	}
	return nil
}
