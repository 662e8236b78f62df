package testimage

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// cleanPath makes p relative to the layer root. Going through "/" first
// clamps ".." at the root instead of letting it escape.
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

func splitPath(p string) (dir, base string) {
	dir, base = path.Split(p)
	return strings.TrimSuffix(dir, "/"), base
}

func joinPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// comparePaths orders like a sorted depth-first walk: a directory before
// what is in it, siblings by name, and an opaque whiteout first among its
// siblings so that it is seen before anything the same layer adds there.
func comparePaths(a, b string) int {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		switch {
		case as[i] == opaqueName:
			return -1
		case bs[i] == opaqueName:
			return 1
		}
		return strings.Compare(as[i], bs[i])
	}
	return len(as) - len(bs)
}

// orderFiles returns the entries of a layer in the order they are written:
// cleaned paths, missing parent directories added, sorted, and each
// hardlink after its target when the target is in the same layer (a tar
// reader can only link to what it has already seen).
func orderFiles(files []File) ([]File, error) {
	byPath := make(map[string]File, len(files))
	for _, f := range files {
		f.Path = cleanPath(f.Path)
		if f.Path == "" {
			return nil, fmt.Errorf("testimage: entry for the root directory")
		}
		if f.Hard {
			f.Link = cleanPath(f.Link)
		}
		if _, dup := byPath[f.Path]; dup {
			return nil, fmt.Errorf("testimage: %s is in the layer twice", f.Path)
		}
		byPath[f.Path] = f
	}
	for p := range byPath {
		for dir, _ := splitPath(p); dir != ""; dir, _ = splitPath(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = File{Path: dir, Mode: fs.ModeDir}
			}
		}
	}
	sorted := make([]File, 0, len(byPath))
	for _, f := range byPath {
		sorted = append(sorted, f)
	}
	slices.SortFunc(sorted, func(a, b File) int { return comparePaths(a.Path, b.Path) })

	out := make([]File, 0, len(sorted))
	done := make(map[string]bool, len(sorted))
	waiting := map[string][]File{}
	var emit func(f File)
	emit = func(f File) {
		out = append(out, f)
		done[f.Path] = true
		held := waiting[f.Path]
		delete(waiting, f.Path)
		for _, h := range held {
			emit(h)
		}
	}
	for _, f := range sorted {
		if _, inLayer := byPath[f.Link]; f.Hard && inLayer && !done[f.Link] {
			waiting[f.Link] = append(waiting[f.Link], f)
			continue
		}
		emit(f)
	}
	if len(waiting) != 0 {
		return nil, fmt.Errorf("testimage: hardlinks in a cycle")
	}
	return out, nil
}

// writeFiles writes a layer's entries.
func writeFiles(tw *tar.Writer, files []File, asIs bool) error {
	if !asIs {
		var err error
		if files, err = orderFiles(files); err != nil {
			return err
		}
	}
	for _, f := range files {
		hdr, err := header(f, asIs)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("testimage: %s: %w", f.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// header describes f the way layer tars conventionally do: names relative
// to the root without "./", a trailing slash on directories, no user or
// group names, whole-second mtimes, xattrs as SCHILY.xattr PAX records.
func header(f File, asIs bool) (*tar.Header, error) {
	hdr := &tar.Header{
		Name:     f.Path,
		Uid:      f.UID,
		Gid:      f.GID,
		ModTime:  f.ModTime,
		Linkname: f.Link,
	}
	if hdr.ModTime.IsZero() {
		hdr.ModTime = Epoch
	}
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	perm := int64(0o644)
	m := f.Mode
	switch {
	case f.Hard:
		hdr.Typeflag = tar.TypeLink
	case m&fs.ModeDir != 0:
		hdr.Typeflag = tar.TypeDir
		perm = 0o755
		if !asIs {
			hdr.Name += "/"
		}
	case m&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
		perm = 0o777
	case m&fs.ModeDevice != 0:
		hdr.Typeflag = tar.TypeBlock
		if m&fs.ModeCharDevice != 0 {
			hdr.Typeflag = tar.TypeChar
		}
		hdr.Devmajor, hdr.Devminor = f.Major, f.Minor
		perm = 0o666
	case m&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
		perm = 0o666
	case m&(fs.ModeSocket|fs.ModeIrregular) != 0:
		return nil, fmt.Errorf("testimage: %s: tar cannot hold a %v", f.Path, m.Type())
	default:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(len(f.Data))
	}
	if m.Perm() != 0 {
		perm = int64(m.Perm())
	}
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	hdr.Mode = perm
	if len(f.Xattrs) > 0 {
		hdr.Format = tar.FormatPAX
		hdr.PAXRecords = make(map[string]string, len(f.Xattrs))
		for k, v := range f.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return hdr, nil
}
