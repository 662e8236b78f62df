// Package testimage writes container images as files, in the formats Berth
// loads: an OCI image layout, that layout as a tar (an "oci-archive"), and
// the tar that docker save writes (a "docker-archive").
//
// It deliberately shares no code with Berth's own image handling: the
// fixtures are a second, independent reading of the specifications, so a
// bug in Berth's reader is not mirrored by the writer it is tested against.
// Everything is deterministic: the same Image gives the same bytes, and so
// the same digests, on every run.
package testimage

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"runtime"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer compressions.
const (
	Gzip = "gzip"
	Zstd = "zstd"
	// Uncompressed layers are plain tar.
	Uncompressed = "none"
)

// Epoch is the time given to everything that has no time of its own (file
// mtimes, created fields, archive entries), so that output does not depend
// on when it was written. Tests may compare against it; do not change it.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of a layer.
//
// The kind comes from Mode: a directory (fs.ModeDir), a symlink
// (fs.ModeSymlink, target in Link), a character device
// (fs.ModeDevice|fs.ModeCharDevice), a block device (fs.ModeDevice), a FIFO
// (fs.ModeNamedPipe), a hardlink (Hard, target path in Link) or otherwise a
// regular file holding Data. Permission bits of zero mean the usual default
// (0755 directories, 0644 files, 0666 devices and FIFOs, 0777 symlinks);
// fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky are kept.
//
// Major and Minor are a device's numbers. Xattrs become SCHILY.xattr.*
// PAX records. Paths are relative to the root whether or not they start
// with "/"; a hardlink's Link is a path in the image like Path, a
// symlink's is kept verbatim.
//
// Whiteouts are ordinary files named ".wh.NAME" and ".wh..wh..opq"; see
// Whiteout and OpaqueWhiteout.
type File struct {
	Path    string
	Mode    fs.FileMode
	Data    []byte
	Link    string
	Hard    bool
	UID     int
	GID     int
	Major   int64
	Minor   int64
	Xattrs  map[string]string
	ModTime time.Time // zero means Epoch
}

// Layer is one filesystem change set of an image.
//
// Unless AsIs, the order of Files does not matter: paths are cleaned, each
// missing parent directory is added (0755, root, Epoch), and entries are
// written as a sorted depth-first walk, with an opaque whiteout first in
// its directory and each hardlink after its target. A path given twice is
// an error.
type Layer struct {
	Files []File
	// Compression is Gzip, Zstd or Uncompressed. Empty means what the
	// format writes natively: gzip in OCI layouts, plain tar in docker
	// archives.
	Compression string
	// AsIs writes Files exactly as given: in their order, with their
	// paths uncleaned and no parent directories added. Tests use it to
	// build the malformed layers a loader has to refuse or survive
	// (children before parents, "../" or absolute names, duplicates).
	AsIs bool
	// CreatedBy goes into the layer's history entry; empty means
	// "testimage layer N".
	CreatedBy string

	// gen, when set, streams the entries instead of Files, so generated
	// layers never sit in memory whole.
	gen func(tw *tar.Writer) error
}

// Healthcheck is Docker's image healthcheck, which OCI's ImageConfig has no
// field for. Docker and Podman read it from the config's "Healthcheck".
type Healthcheck struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// Image is a single-platform image.
type Image struct {
	Layers      []Layer
	Config      ocispec.ImageConfig
	Healthcheck *Healthcheck
	// Platform defaults to linux and runtime.GOARCH.
	Platform ocispec.Platform
	// RepoTags name the image in docker archives, as "repo:tag".
	RepoTags []string
	// Name becomes the org.opencontainers.image.ref.name annotation of the
	// image's entry in an OCI layout's index.json, verbatim. (Docker 25
	// archives annotate from RepoTags instead, as Docker does.)
	Name string
}

// Whiteout returns the entry that deletes path from the layers below.
func Whiteout(path string) File {
	dir, base := splitPath(cleanPath(path))
	return File{Path: joinPath(dir, ".wh."+base)}
}

// OpaqueWhiteout returns the entry that hides everything the layers below
// have in dir.
func OpaqueWhiteout(dir string) File {
	return File{Path: joinPath(cleanPath(dir), opaqueName)}
}

const opaqueName = ".wh..wh..opq"

func (img Image) platform() ocispec.Platform {
	p := img.Platform
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

func (l Layer) compression(native string) (string, error) {
	switch l.Compression {
	case "":
		return native, nil
	case Gzip, Zstd, Uncompressed:
		return l.Compression, nil
	}
	return "", fmt.Errorf("testimage: unknown layer compression %q", l.Compression)
}

func layerMediaType(compression string) string {
	switch compression {
	case Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}
