package image

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types, which registries and `docker save` still use
// beside OCI's; their documents have the same shapes as OCI's.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
)

// Size limits for the JSON documents: real ones are a few KiB; a manifest
// of megabytes is an attack or a broken registry.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 32 << 20
)

// IsIndex reports whether a media type is a list of manifests.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether a media type is one image's manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsLayer reports whether a media type is a file system layer Berth can
// unpack.
func IsLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still found in images
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		MediaTypeDockerLayer, MediaTypeDockerForeignLayer, mediaTypeDockerLayerTar:
		return true
	}
	return false
}

// IsConfig reports whether a media type is an image config.
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// sniff is the part of every manifest, index and config document that
// tells them apart when no media type came with them (OCI layouts and
// some registries leave it out).
type sniff struct {
	MediaType     string          `json:"mediaType"`
	SchemaVersion *int            `json:"schemaVersion"`
	Manifests     json.RawMessage `json:"manifests"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
}

// DetectMediaType works out what a manifest or index document is from its
// content, for descriptors that carry no media type.
func DetectMediaType(b []byte) (string, error) {
	var s sniff
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("not a JSON manifest or index: %w", err)
	}
	if s.MediaType != "" {
		return s.MediaType, nil
	}
	switch {
	case s.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case s.Config != nil || s.Layers != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", errors.New("neither a manifest (config, layers) nor an index (manifests)")
}

// ParseManifest decodes and checks an image manifest, OCI or Docker
// schema 2. mediaType is what its descriptor said ("" if nothing).
func ParseManifest(b []byte, mediaType string) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("manifest schemaVersion is %d; only 2 is supported", m.SchemaVersion)
	}
	if m.MediaType != "" && mediaType != "" && m.MediaType != mediaType {
		return m, fmt.Errorf("manifest says its mediaType is %q, its descriptor %q", m.MediaType, mediaType)
	}
	if mt := orString(m.MediaType, mediaType); mt != "" && !IsManifest(mt) {
		return m, fmt.Errorf("mediaType %q is not an image manifest", mt)
	}
	if err := checkDescriptor("config", m.Config); err != nil {
		return m, err
	}
	if m.Config.MediaType != "" && !IsConfig(m.Config.MediaType) {
		// Artifacts (Helm charts, signatures) have other configs; they
		// are content, not images Berth can run.
		return m, fmt.Errorf("config mediaType %q is not an image config: not a container image", m.Config.MediaType)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
			return m, err
		}
		if !IsLayer(l.MediaType) {
			return m, fmt.Errorf("layers[%d]: mediaType %q is not a layer Berth can unpack", i, l.MediaType)
		}
	}
	return m, nil
}

// ParseIndex decodes and checks an image index or Docker manifest list.
func ParseIndex(b []byte, mediaType string) (ocispec.Index, error) {
	var x ocispec.Index
	if err := json.Unmarshal(b, &x); err != nil {
		return x, fmt.Errorf("index is not valid JSON: %w", err)
	}
	if x.SchemaVersion != 2 {
		return x, fmt.Errorf("index schemaVersion is %d; only 2 is supported", x.SchemaVersion)
	}
	if mt := orString(x.MediaType, mediaType); mt != "" && !IsIndex(mt) {
		return x, fmt.Errorf("mediaType %q is not an index", mt)
	}
	for i, d := range x.Manifests {
		if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), d); err != nil {
			return x, err
		}
	}
	return x, nil
}

// ParseConfig decodes an image config and checks what unpacking needs.
func ParseConfig(b []byte) (ocispec.Image, error) {
	var c ocispec.Image
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("image config is not valid JSON: %w", err)
	}
	if c.RootFS.Type != "" && c.RootFS.Type != "layers" {
		return c, fmt.Errorf("image config rootfs.type is %q, not \"layers\"", c.RootFS.Type)
	}
	for i, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return c, fmt.Errorf("image config rootfs.diff_ids[%d]: %w", i, err)
		}
	}
	return c, nil
}

func checkDescriptor(field string, d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%s.digest %q: %w", field, d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s.size is negative", field)
	}
	return nil
}

func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// platformOf is what a manifest's descriptor in an index says it runs on.
func platformOf(d ocispec.Descriptor) ocispec.Platform {
	if d.Platform == nil {
		return ocispec.Platform{}
	}
	return *d.Platform
}

// ChainIDs are the identities of the layer stacks an image's diffIDs
// make: the first is the first diffID, each next one
// sha256(previous + " " + diffID). A snapshot is named by its chain ID, so
// images that share their bottom layers share those snapshots.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// A Matcher picks manifests from an index by platform.
type Matcher = platforms.MatchComparer

// PlatformMatcher is the matcher for a platform string ("linux/arm64/v8");
// "" is the host's platform.
func PlatformMatcher(p string) (Matcher, error) {
	if p == "" {
		return platforms.Default(), nil
	}
	spec, err := platforms.Parse(p)
	if err != nil {
		return nil, fmt.Errorf("platform %q: %w", p, err)
	}
	return platforms.Only(spec), nil
}
