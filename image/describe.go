package image

import (
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Description is what inspect shows of an image: its record and the
// manifest and config chosen for one platform.
type Description struct {
	Name     string              `json:"name"`
	ID       digest.Digest       `json:"id"`
	Target   ocispec.Descriptor  `json:"target"`
	Manifest *ocispec.Descriptor `json:"manifestDescriptor,omitempty"`
	// Size is the sum of the layers' stored (compressed) sizes.
	Size    int64                `json:"size"`
	Created time.Time            `json:"created"`
	Config  *ocispec.Image       `json:"config,omitempty"`
	Layers  []ocispec.Descriptor `json:"layers,omitempty"`
	ChainID digest.Digest        `json:"chainID,omitempty"`
	// Unpacked: every layer is a committed snapshot.
	Unpacked bool              `json:"unpacked"`
	Labels   map[string]string `json:"labels,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// Describe describes an image for this host's platform.
func (s *Store) Describe(img Image) (Description, error) {
	return s.DescribePlatform(img, "")
}

// DescribePlatform describes an image for a platform. An image whose
// manifest or config cannot be read is still described, with the error.
func (s *Store) DescribePlatform(img Image, platform string) (Description, error) {
	d := Description{Name: img.Name, ID: img.ID, Target: img.Target, Created: img.Created, Labels: img.Labels}
	m, desc, err := s.Manifest(img.Target, platform)
	if err != nil {
		d.Error = err.Error()
		return d, err
	}
	d.Manifest = &desc
	d.Layers = m.Layers
	for _, l := range m.Layers {
		d.Size += l.Size
	}
	c, err := s.Config(m)
	if err != nil {
		d.Error = err.Error()
		return d, err
	}
	d.Config = &c
	d.ID = m.Config.Digest
	if c.Created != nil {
		d.Created = *c.Created
	}
	if ids := ChainIDs(c.RootFS.DiffIDs); len(ids) > 0 {
		d.ChainID = ids[len(ids)-1]
		_, err := s.Snapshots.Stat(d.ChainID.String())
		d.Unpacked = err == nil
	} else {
		d.Unpacked = true
	}
	return d, nil
}
