package image_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/metadata"
	"github.com/berth-dev/berth/image/snapshot"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// unpacker loads the layered image without unpacking it and starts an
// Unpacker for it under a lease that lasts until the test ends.
func unpacker(t *testing.T, s *image.Store) (*image.Unpacker, ocispec.Manifest) {
	t.Helper()
	load(t, s, archive(t, layered(), image.FormatOCI))
	img, err := s.Get("example.com/layered:1")
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.Manifest(img.Target, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Config(m)
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan string), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WithLease(func(id string) error {
			held <- id
			<-release
			return nil
		})
	}()
	lease := <-held
	t.Cleanup(func() { close(release); <-done })
	u, err := s.NewUnpacker(lease, m, c)
	if err != nil {
		t.Fatal(err)
	}
	return u, m
}

// Layers arriving top first, as parallel downloads may finish, unpack to
// the same tree as an unpack in order, through both drivers; each layer's
// start and end is reported once.
func TestUnpackerTakesLayersInAnyOrder(t *testing.T) {
	want := strings.Join(tree(t, rootfs(t, func() *image.Store {
		s := openStore(t, snapshot.Overlay)
		load(t, s, archive(t, layered(), image.FormatOCI))
		return s
	}(), "example.com/layered:1")), "\n")
	for _, d := range []snapshot.Driver{snapshot.Overlay, snapshot.Copy} {
		t.Run(string(d), func(t *testing.T) {
			s := openStore(t, d)
			u, m := unpacker(t, s)
			var mu sync.Mutex
			events := map[string]int{}
			u.Progress = func(l ocispec.Descriptor, done bool, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("layer %s: %v", l.Digest, err)
				}
				if done {
					events["done "+l.Digest.String()]++
				} else {
					events["start "+l.Digest.String()]++
				}
			}
			for i := len(m.Layers) - 1; i >= 0; i-- {
				u.Arrived(m.Layers[i].Digest)
				u.Arrived(m.Layers[i].Digest) // twice is once
			}
			res, err := u.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if res.Unpacked != len(m.Layers) {
				t.Errorf("unpacked %d layers, want %d", res.Unpacked, len(m.Layers))
			}
			for _, l := range m.Layers {
				if events["start "+l.Digest.String()] != 1 || events["done "+l.Digest.String()] != 1 {
					t.Errorf("layer %s reported %v", l.Digest, events)
				}
			}
			if got := strings.Join(tree(t, rootfs(t, s, "example.com/layered:1")), "\n"); got != want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A layer that never arrives fails Wait with its name, and an Abort half
// way leaves no snapshot behind but the layers already committed.
func TestUnpackerMissingOrAbortedLeavesNoActiveSnapshot(t *testing.T) {
	for _, d := range []snapshot.Driver{snapshot.Overlay, snapshot.Copy} {
		t.Run(string(d), func(t *testing.T) {
			s := openStore(t, d)
			u, m := unpacker(t, s)
			u.Arrived(m.Layers[0].Digest)
			u.Arrived(m.Layers[2].Digest)
			_, err := u.Wait()
			if err == nil || !strings.Contains(err.Error(), "layer 1 ("+m.Layers[1].Digest.String()+") never arrived") {
				t.Fatalf("Wait with a layer missing: %v", err)
			}
			noActive(t, s)

			s = openStore(t, d)
			u, m = unpacker(t, s)
			u.Arrived(m.Layers[1].Digest)
			u.Arrived(m.Layers[0].Digest)
			u.Abort()
			noActive(t, s)
		})
	}
}

func noActive(t *testing.T, s *image.Store) {
	t.Helper()
	infos, err := s.Snapshots.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.Kind != metadata.Committed {
			t.Errorf("left behind: %+v", in)
		}
	}
}
