package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/layer"
	"github.com/containerd/platforms"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions shape the image Import makes.
type ImportOptions struct {
	// Changes are Dockerfile instructions applied to the config, as
	// `docker import --change` takes them: CMD, ENTRYPOINT, ENV, WORKDIR,
	// USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL.
	Changes []string
	// Message is the history entry's comment.
	Message string
	// Platform the image declares ("" = this host's).
	Platform string
}

// Import makes a one-layer image from a root file system tar (plain, gzip
// or zstd), as `docker import` does, and names it.
func (s *Store) Import(r io.Reader, name string, o ImportOptions) (Image, error) {
	full, err := NormalizeName(name)
	if err != nil {
		return Image{}, err
	}
	plat := ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}
	if o.Platform != "" {
		p, err := platforms.Parse(o.Platform)
		if err != nil {
			return Image{}, fmt.Errorf("platform %q: %w", o.Platform, err)
		}
		plat = platforms.Normalize(p)
	}
	now := time.Now().UTC()
	cfg := ocispec.Image{
		Created:  &now,
		Platform: plat,
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	for _, c := range o.Changes {
		if err := applyChange(&cfg.Config, c); err != nil {
			return Image{}, err
		}
	}
	var target ocispec.Descriptor
	err = s.withLease(func(lease string) error {
		layerDesc, diffID, err := s.writeLayer(lease, r)
		if err != nil {
			return err
		}
		cfg.RootFS.DiffIDs = []digest.Digest{diffID}
		cfg.History = []ocispec.History{{Created: &now, CreatedBy: "berth image import", Comment: o.Message}}
		cfgDesc, err := s.writeJSON(lease, ocispec.MediaTypeImageConfig, cfg)
		if err != nil {
			return err
		}
		man := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    cfgDesc,
			Layers:    []ocispec.Descriptor{layerDesc},
		}
		if target, err = s.writeJSON(lease, ocispec.MediaTypeImageManifest, man); err != nil {
			return err
		}
		return s.Put(full, target, nil)
	})
	if err != nil {
		return Image{}, fmt.Errorf("import %s: %w", name, err)
	}
	return s.Get(full)
}

// writeLayer stores a root file system tar as a gzip layer, returning its
// descriptor and diff ID (the digest of the uncompressed tar).
func (s *Store) writeLayer(lease string, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	plain, _, err := layer.Decompress(r)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer plain.Close()
	w, err := s.Content.Writer("import-"+lease, "", 0)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	diff := digest.Canonical.Digester()
	gz := pgzip.NewWriter(w)
	// Check it is a tar while copying: a file that is not one would
	// make an image no runtime can unpack.
	if _, err := checkTar(io.TeeReader(plain, io.MultiWriter(diff.Hash(), gz))); err != nil {
		w.Abort()
		return ocispec.Descriptor{}, "", fmt.Errorf("root file system tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		w.Abort()
		return ocispec.Descriptor{}, "", err
	}
	size := w.Offset()
	d := w.Digest()
	if err := s.leaseContent(lease, d); err != nil {
		w.Abort()
		return ocispec.Descriptor{}, "", err
	}
	if _, err := w.Commit(size, d); err != nil && !errors.Is(err, content.ErrExists) {
		return ocispec.Descriptor{}, "", err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: size}, diff.Digest(), nil
}

// writeJSON stores a document as a blob.
func (s *Store) writeJSON(lease, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := s.leaseContent(lease, desc.Digest); err != nil {
		return desc, err
	}
	return desc, s.Content.WriteBlob("write-"+desc.Digest.String(), strings.NewReader(string(b)), desc)
}

// applyChange applies one Dockerfile instruction to a config.
func applyChange(c *ocispec.ImageConfig, change string) error {
	instr, arg, _ := strings.Cut(strings.TrimSpace(change), " ")
	arg = strings.TrimSpace(arg)
	bad := func(why string) error { return fmt.Errorf("--change %q: %s", change, why) }
	list := func() []string {
		var l []string
		if strings.HasPrefix(arg, "[") && json.Unmarshal([]byte(arg), &l) == nil {
			return l
		}
		return []string{"/bin/sh", "-c", arg} // shell form
	}
	pairs := func() (map[string]string, error) {
		out := map[string]string{}
		for _, f := range strings.Fields(arg) {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "" {
				return nil, bad("want KEY=VALUE")
			}
			out[k] = strings.Trim(v, `"`)
		}
		return out, nil
	}
	switch strings.ToUpper(instr) {
	case "CMD":
		c.Cmd = list()
	case "ENTRYPOINT":
		c.Entrypoint = list()
	case "ENV":
		kv, err := pairs()
		if err != nil {
			return err
		}
		for k, v := range kv {
			c.Env = setEnv(c.Env, k, v)
		}
	case "WORKDIR":
		if !strings.HasPrefix(arg, "/") {
			return bad("WORKDIR must be absolute")
		}
		c.WorkingDir = arg
	case "USER":
		c.User = arg
	case "LABEL":
		kv, err := pairs()
		if err != nil {
			return err
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range kv {
			c.Labels[k] = v
		}
	case "EXPOSE":
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range strings.Fields(arg) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			c.ExposedPorts[p] = struct{}{}
		}
	case "VOLUME":
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		var l []string
		if json.Unmarshal([]byte(arg), &l) != nil {
			l = strings.Fields(arg)
		}
		for _, v := range l {
			c.Volumes[v] = struct{}{}
		}
	case "STOPSIGNAL":
		c.StopSignal = arg
	default:
		return bad("unsupported instruction (want CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME or STOPSIGNAL)")
	}
	return nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// checkTar reads a tar stream through, failing on anything that is not a
// well-formed tar, and then reads what follows its end (the padding that
// belongs to the layer's digest).
func checkTar(r io.Reader) (int, error) {
	tr := tar.NewReader(r)
	n := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("entry %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return 0, errors.New("empty, or not a tar archive")
	}
	_, err := io.Copy(io.Discard, r)
	return n, err
}
