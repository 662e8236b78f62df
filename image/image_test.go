package image_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("image store tests mount snapshots: run as root")
	}
}

func openStore(t *testing.T, d snapshot.Driver) *image.Store {
	t.Helper()
	needRoot(t)
	s, err := image.Open(t.TempDir(), image.Options{Snapshotter: d})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func archive(t *testing.T, img testimage.Image, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case image.FormatDocker:
		err = img.WriteDockerArchive(&buf)
	default:
		err = img.WriteOCIArchive(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func load(t *testing.T, s *image.Store, b []byte) []string {
	t.Helper()
	names, err := s.Load(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// rootfs unpacks an image and mounts a read-only view of it.
func rootfs(t *testing.T, s *image.Store, name string) string {
	t.Helper()
	img, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Unpack(img.Target, "")
	if err != nil {
		t.Fatal(err)
	}
	key := "view-" + t.Name() + "-" + name
	ms, err := s.Snapshots.View(key, res.ChainID.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := snapshot.MountAll(ms, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		snapshot.Unmount(dir)
		s.Snapshots.Remove(key)
	})
	return dir
}

// tree lists what is under dir: path, type, mode, owner, size and link
// target or content of small files — what unpack must reproduce.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		line := rel + " " + fs.FileMode(st.Mode&0o7777).String() + " " + itoa(int(st.Uid)) + ":" + itoa(int(st.Gid))
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			line += " " + string(b)
			if st.Nlink > 1 {
				line += " (links " + itoa(int(st.Nlink)) + ")"
			}
		case unix.S_IFCHR:
			line += " char " + itoa(int(unix.Major(st.Rdev))) + "," + itoa(int(unix.Minor(st.Rdev)))
		}
		out = append(out, line)
		return nil
	})
	sort.Strings(out)
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func layered() testimage.Image {
	return testimage.Image{
		RepoTags: []string{"example.com/layered:1"},
		Name:     "example.com/layered:1",
		Config:   ocispec.ImageConfig{Cmd: []string{"sh"}},
		Layers: []testimage.Layer{
			{Files: []testimage.File{
				{Path: "etc/os-release", Data: []byte("base")},
				{Path: "gone", Data: []byte("deleted above")},
				{Path: "opaque/old1", Data: []byte("hidden above")},
				{Path: "opaque/old2", Data: []byte("hidden above")},
				{Path: "keep/file", Data: []byte("kept"), UID: 1000, GID: 1000, Mode: 0o600},
				{Path: "bin/tool", Data: []byte("#!tool"), Mode: 0o4755},
			}},
			{Compression: "zstd", Files: []testimage.File{
				testimage.Whiteout("gone"),
				testimage.OpaqueWhiteout("opaque"),
				{Path: "opaque/new", Data: []byte("added in the opaque dir")},
				{Path: "etc/os-release", Data: []byte("changed")},
				{Path: "link", Mode: fs.ModeSymlink, Link: "/etc/os-release"},
				{Path: "hard", Hard: true, Link: "bin/tool"},
				{Path: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Major: 1, Minor: 3},
			}},
			{Compression: "none", Files: []testimage.File{
				{Path: "top", Data: []byte("top layer")},
			}},
		},
	}
}

// Whiteouts, opaque directories, hardlinks, symlinks, devices, owners and
// modes come out the same through both snapshot drivers and from both
// archive formats.
func TestLayersUnpackTheSameThroughBothDriversAndFormats(t *testing.T) {
	var want []string
	for _, d := range []snapshot.Driver{snapshot.Overlay, snapshot.Copy} {
		for _, format := range []string{image.FormatDocker, image.FormatOCI} {
			t.Run(string(d)+"/"+format, func(t *testing.T) {
				s := openStore(t, d)
				names := load(t, s, archive(t, layered(), format))
				if len(names) != 1 || names[0] != "example.com/layered:1" {
					t.Fatalf("loaded %v", names)
				}
				got := tree(t, rootfs(t, s, "example.com/layered:1"))
				joined := strings.Join(got, "\n")
				for _, bad := range []string{"gone", "old1", "old2", ".wh."} {
					if strings.Contains(joined, bad) {
						t.Errorf("%q survived its whiteout:\n%s", bad, joined)
					}
				}
				for _, good := range []string{"opaque/new", "etc/os-release -rw-r--r-- 0:0 changed", "keep/file -rw------- 1000:1000 kept",
					"link -rwxrwxrwx 0:0 -> /etc/os-release", "hard", "dev/null", "top layer", "(links 2)"} {
					if !strings.Contains(joined, good) {
						t.Errorf("missing %q in:\n%s", good, joined)
					}
				}
				if want == nil {
					want = got
				} else if strings.Join(want, "\n") != joined {
					t.Errorf("tree differs from the first driver's:\n%s\nwant:\n%s", joined, strings.Join(want, "\n"))
				}
			})
		}
	}
}

// Two images on one base: the base is unpacked once and shared.
func TestImagesShareTheirCommonLayers(t *testing.T) {
	s := openStore(t, "")
	base := testimage.Layer{Files: []testimage.File{{Path: "base", Data: bytes.Repeat([]byte("b"), 100000)}}}
	var tops []string
	for _, n := range []string{"one", "two"} {
		img := testimage.Image{RepoTags: []string{"example.com/" + n + ":latest"}, Layers: []testimage.Layer{base,
			{Files: []testimage.File{{Path: n, Data: []byte(n)}}}}}
		load(t, s, archive(t, img, image.FormatDocker))
		got, err := s.Get("example.com/" + n)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Unpack(got.Target, "")
		if err != nil {
			t.Fatal(err)
		}
		tops = append(tops, res.ChainID.String())
		want := 2
		if n == "two" {
			want = 1 // the base was there
		}
		if res.Unpacked != want {
			t.Fatalf("image %s unpacked %d layers, want %d", n, res.Unpacked, want)
		}
	}
	all, err := s.Snapshots.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("%d snapshots, want 3 (one base, two tops)", len(all))
	}
	// Unpacking again does nothing.
	img, _ := s.Get("example.com/one")
	if res, err := s.Unpack(img.Target, ""); err != nil || res.Unpacked != 0 {
		t.Fatalf("second unpack: %+v, %v", res, err)
	}
}

func TestConcurrentUnpacksOfOneImageAllSucceed(t *testing.T) {
	s := openStore(t, "")
	img := layered()
	load(t, s, archive(t, img, image.FormatOCI))
	got, _ := s.Get("example.com/layered:1")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	chains := make([]digest.Digest, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Unpack(got.Target, "")
			errs[i], chains[i] = err, res.ChainID
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("unpack %d: %v", i, err)
		}
		if chains[i] != chains[0] {
			t.Fatalf("unpacks disagree on the chain: %s vs %s", chains[i], chains[0])
		}
	}
	all, _ := s.Snapshots.List()
	if len(all) != 3 {
		t.Fatalf("%d snapshots after concurrent unpacks, want 3", len(all))
	}
}

func TestIndexesPickTheHostPlatformOrTheOneAsked(t *testing.T) {
	s := openStore(t, "")
	dir := t.TempDir()
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	host := testimage.Image{Layers: []testimage.Layer{{Files: []testimage.File{{Path: "arch", Data: []byte(runtime.GOARCH)}}}}}
	foreign := testimage.Image{Platform: ocispec.Platform{OS: "linux", Architecture: other},
		Layers: []testimage.Layer{{Files: []testimage.File{{Path: "arch", Data: []byte(other)}}}}}
	if _, err := testimage.WriteOCINestedIndex(dir, "example.com/multi:1", host, foreign); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := testimage.ArchiveLayout(&buf, dir); err != nil {
		t.Fatal(err)
	}
	load(t, s, buf.Bytes())
	img, err := s.Get("example.com/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if !image.IsIndex(img.Target.MediaType) {
		t.Fatalf("target is %s, want an index", img.Target.MediaType)
	}
	for _, p := range []string{"", "linux/" + other} {
		m, _, err := s.Manifest(img.Target, p)
		if err != nil {
			t.Fatalf("platform %q: %v", p, err)
		}
		c, err := s.Config(m)
		if err != nil {
			t.Fatal(err)
		}
		want := runtime.GOARCH
		if p != "" {
			want = other
		}
		if c.Architecture != want {
			t.Fatalf("platform %q chose %s", p, c.Architecture)
		}
	}
	if _, _, err := s.Manifest(img.Target, "windows/amd64"); err == nil || !strings.Contains(err.Error(), "no manifest for windows/amd64") {
		t.Fatalf("missing platform: %v", err)
	}
}

// storeIsEmpty checks that a store holds no image and, after a prune, no
// blob and no snapshot: a failed load left nothing that sticks.
func storeIsEmpty(t *testing.T, s *image.Store) {
	t.Helper()
	if all, _ := s.List(); len(all) != 0 {
		t.Fatalf("images after a failed load: %v", all)
	}
	if _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.Content.Walk(func(content.Info) error { n++; return nil })
	sn, _ := s.Snapshots.List()
	if n != 0 || len(sn) != 0 {
		t.Fatalf("%d blobs and %d snapshots left after prune", n, len(sn))
	}
}

// Each bad archive fails with an error that says what is wrong, names
// nothing, and a good load afterwards works.
func TestBadArchivesFailClearlyAndLeaveNothing(t *testing.T) {
	good := layered()
	ociOf := func(t *testing.T, img testimage.Image) string {
		dir := t.TempDir()
		if _, err := img.WriteOCILayout(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tarOf := func(t *testing.T, dir string) []byte {
		var buf bytes.Buffer
		if err := testimage.ArchiveLayout(&buf, dir); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	// blobOf finds the layout's blob of a kind by reading its manifest.
	manifestOf := func(t *testing.T, dir string) (string, ocispec.Manifest) {
		idx := readJSON[ocispec.Index](t, filepath.Join(dir, "index.json"))
		p := filepath.Join(dir, "blobs", "sha256", idx.Manifests[0].Digest.Encoded())
		return p, readJSON[ocispec.Manifest](t, p)
	}
	blobPath := func(dir string, d digest.Digest) string {
		return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
	}
	cases := []struct {
		name  string
		make  func(t *testing.T) []byte
		want  string
		where string // "load" or "unpack"
	}{
		{"corrupt layer blob", func(t *testing.T) []byte {
			dir := ociOf(t, good)
			_, m := manifestOf(t, dir)
			p := blobPath(dir, m.Layers[0].Digest)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
			return tarOf(t, dir)
		}, "digest mismatch", "load"},
		{"truncated gzip layer", func(t *testing.T) []byte {
			img := good
			img.Layers = img.Layers[:1]
			dir := ociOf(t, img)
			mp, m := manifestOf(t, dir)
			p := blobPath(dir, m.Layers[0].Digest)
			b, _ := os.ReadFile(p)
			b = b[:len(b)*2/3]
			os.Remove(p)
			d := digest.FromBytes(b)
			os.WriteFile(blobPath(dir, d), b, 0o644)
			m.Layers[0].Digest, m.Layers[0].Size = d, int64(len(b))
			rewriteManifest(t, dir, mp, m)
			return tarOf(t, dir)
		}, "unexpected EOF", "unpack"},
		{"manifest that is not JSON", func(t *testing.T) []byte {
			dir := ociOf(t, good)
			mp, _ := manifestOf(t, dir)
			replaceBlob(t, dir, mp, []byte("<html>not a manifest</html>"))
			return tarOf(t, dir)
		}, "not valid JSON", "load"},
		{"manifest naming a missing blob", func(t *testing.T) []byte {
			dir := ociOf(t, good)
			_, m := manifestOf(t, dir)
			os.Remove(blobPath(dir, m.Layers[1].Digest))
			return tarOf(t, dir)
		}, "does not hold", "load"},
		{"index without this platform", func(t *testing.T) []byte {
			img := good
			img.Platform = ocispec.Platform{OS: "plan9", Architecture: "mips"}
			dir := t.TempDir()
			if _, err := testimage.WriteOCINestedIndex(dir, "example.com/layered:1", img); err != nil {
				t.Fatal(err)
			}
			return tarOf(t, dir)
		}, "no manifest for this host's platform", "load"},
		{"diff ID that does not match", func(t *testing.T) []byte {
			dir := ociOf(t, good)
			_, m := manifestOf(t, dir)
			cp := blobPath(dir, m.Config.Digest)
			c := readJSON[ocispec.Image](t, cp)
			c.RootFS.DiffIDs[0] = digest.FromString("something else")
			b := mustJSON(t, c)
			mp, m := manifestOf(t, dir)
			os.Remove(cp)
			m.Config.Digest, m.Config.Size = digest.FromBytes(b), int64(len(b))
			os.WriteFile(blobPath(dir, m.Config.Digest), b, 0o644)
			rewriteManifest(t, dir, mp, m)
			return tarOf(t, dir)
		}, "rootfs.diff_ids", "unpack"},
		{"not an archive at all", func(t *testing.T) []byte {
			return []byte("just some text, not a tar")
		}, "archive", "load"},
		{"layer with escaping paths", func(t *testing.T) []byte {
			img := testimage.Image{Name: "example.com/layered:1", Layers: []testimage.Layer{{AsIs: true, Files: []testimage.File{
				{Path: "../../escaped", Data: []byte("x")},
				{Path: "up", Mode: fs.ModeSymlink, Link: "../../../../../../tmp"},
				{Path: "up/escaped-through-symlink", Data: []byte("x")},
			}}}}
			return tarOf(t, ociOf(t, img))
		}, "", "unpack"},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			s := openStore(t, "")
			before, _ := filepath.Glob("/tmp/escaped*")
			_, err := s.Load(bytes.NewReader(c.make(t)))
			if c.where == "unpack" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				img, gerr := s.Get("example.com/layered:1")
				if gerr != nil {
					t.Fatal(gerr)
				}
				_, err = s.Unpack(img.Target, "")
				if c.want == "" {
					// Escapes may be refused or kept inside; never
					// written outside.
					after, _ := filepath.Glob("/tmp/escaped*")
					if len(after) != len(before) {
						t.Fatalf("a layer wrote outside its snapshot: %v", after)
					}
					for _, p := range []string{filepath.Join(s.Root(), "escaped"), filepath.Join(filepath.Dir(s.Root()), "escaped")} {
						if _, err := os.Stat(p); err == nil {
							t.Fatalf("a layer wrote %s", p)
						}
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("unpack: %v; want an error saying %q", err, c.want)
				}
				// No snapshot of the failed layer stays.
				sn, _ := s.Snapshots.List()
				for _, x := range sn {
					if strings.HasPrefix(x.Name, "extract-") {
						t.Fatalf("half-unpacked snapshot left: %s", x.Name)
					}
				}
				s.Remove("example.com/layered:1", true)
			} else if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load: %v; want an error saying %q", err, c.want)
			}
			storeIsEmpty(t, s)
			// A good load into the same store now works.
			load(t, s, archive(t, good, image.FormatOCI))
			rootfs(t, s, "example.com/layered:1")
		})
	}
}

// An OCI layout tarred by hand (tar -C layout -c .) has "./" names.
func TestLoadOfALayoutTarredByHand(t *testing.T) {
	s := openStore(t, "")
	dir := t.TempDir()
	if _, err := layered().WriteOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	b := tarDir(t, dir)
	if names := load(t, s, b); len(names) != 1 {
		t.Fatalf("loaded %v", names)
	}
	rootfs(t, s, "example.com/layered:1")
}

func TestSaveAndLoadRoundTrip(t *testing.T) {
	for _, format := range []string{image.FormatDocker, image.FormatOCI} {
		t.Run(format, func(t *testing.T) {
			a := openStore(t, "")
			load(t, a, archive(t, layered(), image.FormatOCI))
			if _, err := a.Tag("example.com/layered:1", "other:2"); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := a.Save(&buf, []string{"example.com/layered:1", "other:2"}, format); err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			a.Save(&again, []string{"example.com/layered:1", "other:2"}, format)
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Fatal("two saves of the same images differ")
			}
			b := openStore(t, "")
			names := load(t, b, buf.Bytes())
			sort.Strings(names)
			if strings.Join(names, " ") != "docker.io/library/other:2 example.com/layered:1" {
				t.Fatalf("loaded %v", names)
			}
			x, _ := a.Get("other:2")
			y, err := b.Get("other:2")
			if err != nil || x.ID != y.ID {
				t.Fatalf("image ID changed in the round trip: %s -> %s (%v)", x.ID, y.ID, err)
			}
			if want, got := tree(t, rootfs(t, a, "other:2")), tree(t, rootfs(t, b, "other:2")); strings.Join(want, "\n") != strings.Join(got, "\n") {
				t.Fatalf("trees differ:\n%s\n---\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
			}
		})
	}
}

func TestImportMakesAOneLayerImage(t *testing.T) {
	s := openStore(t, "")
	bb, err := testimage.Busybox()
	if err != nil {
		t.Skip(err)
	}
	// The busybox layer, as a plain rootfs tar.
	var layout bytes.Buffer
	if err := bb.WriteDockerArchive(&layout); err != nil {
		t.Fatal(err)
	}
	load(t, s, layout.Bytes())
	dir := rootfs(t, s, bb.RepoTags[0])
	tarball := tarDir(t, dir)
	img, err := s.Import(bytes.NewReader(tarball), "imported:v1", image.ImportOptions{
		Changes: []string{`CMD ["sh", "-c", "echo hi"]`, "ENV A=1 B=2", "WORKDIR /tmp", "EXPOSE 80"}, Message: "from a test"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Describe(img)
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config
	if strings.Join(c.Config.Cmd, " ") != "sh -c echo hi" || c.Config.WorkingDir != "/tmp" || len(c.RootFS.DiffIDs) != 1 ||
		!strings.Contains(strings.Join(c.Config.Env, " "), "A=1") || c.History[0].Comment != "from a test" {
		t.Fatalf("config: %+v", c)
	}
	if _, ok := c.Config.ExposedPorts["80/tcp"]; !ok {
		t.Fatalf("exposed ports: %v", c.Config.ExposedPorts)
	}
	if got, want := tree(t, rootfs(t, s, "imported:v1")), tree(t, dir); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatal("the imported image's tree differs from the tar's")
	}
	if _, err := s.Import(strings.NewReader("not a tar"), "bad", image.ImportOptions{}); err == nil {
		t.Fatal("imported something that is not a tar")
	}
	if _, err := s.Import(bytes.NewReader(tarball), "x", image.ImportOptions{Changes: []string{"RUN rm -rf /"}}); err == nil {
		t.Fatal("RUN accepted as a change")
	}
}

func TestPruneKeepsWhatIsReferenced(t *testing.T) {
	s := openStore(t, "")
	load(t, s, archive(t, layered(), image.FormatOCI))
	img, _ := s.Get("example.com/layered:1")
	res, err := s.Unpack(img.Target, "")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Prune(); err != nil || len(r.Blobs)+len(r.Snapshots) != 0 {
		t.Fatalf("prune of a store in use removed %+v (%v)", r, err)
	}
	// A container's root on the image keeps its layers after the image
	// name goes; the blobs go.
	if _, err := s.Snapshots.Prepare("container-1", res.ChainID.String(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove("example.com/layered:1", false); err != nil {
		t.Fatal(err)
	}
	r, err := s.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Blobs) == 0 || len(r.Snapshots) != 0 {
		t.Fatalf("prune with a container left: %d blobs, snapshots %v", len(r.Blobs), r.Snapshots)
	}
	if err := s.Snapshots.Remove("container-1"); err != nil {
		t.Fatal(err)
	}
	r, err = s.Prune()
	if err != nil || len(r.Snapshots) != 3 {
		t.Fatalf("prune after the container: %+v, %v", r, err)
	}
	storeIsEmpty(t, s)
}

func TestGetAcceptsNamesAndIDs(t *testing.T) {
	s := openStore(t, "")
	load(t, s, archive(t, layered(), image.FormatOCI))
	img, err := s.Get("example.com/layered:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{img.ID.String(), img.ID.Encoded()[:12], "sha256:" + img.ID.Encoded()[:8]} {
		got, err := s.Get(ref)
		if err != nil || got.Name != img.Name {
			t.Fatalf("Get(%q): %v, %v", ref, got.Name, err)
		}
	}
	if _, err := s.Get("example.com/layered:2"); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("missing tag: %v", err)
	}
	if _, err := s.Get("UPPER/case"); err == nil {
		t.Fatal("an invalid name was accepted")
	}
	s.Tag("example.com/layered:1", "second")
	if _, err := s.Remove(img.ID.Encoded()[:12], false); err == nil {
		t.Fatal("removed an ID with two names without force")
	}
	names, err := s.Remove(img.ID.Encoded()[:12], true)
	if err != nil || len(names) != 2 {
		t.Fatalf("forced remove by ID: %v, %v", names, err)
	}
}

func TestNamesAreNormalizedAsDockerDoes(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":            "docker.io/library/busybox:latest",
		"busybox:1.36":       "docker.io/library/busybox:1.36",
		"user/app":           "docker.io/user/app:latest",
		"localhost:5000/app": "localhost:5000/app:latest",
		"ghcr.io/org/app:v1": "ghcr.io/org/app:v1",
		"docker.io/library/busybox@sha256:" + strings.Repeat("a", 64): "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64),
	} {
		got, err := image.NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a b", "x:", "@sha256:abc"} {
		if _, err := image.NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q) accepted", bad)
		}
	}
}

func TestPlatformIsCheckedForSingleManifestsToo(t *testing.T) {
	s := openStore(t, "")
	load(t, s, archive(t, layered(), image.FormatOCI))
	img, _ := s.Get("example.com/layered:1")
	if _, _, err := s.Manifest(img.Target, "linux/"+runtime.GOARCH); err != nil {
		t.Fatalf("the image's own platform: %v", err)
	}
	if _, _, err := s.Manifest(img.Target, "linux/s390x"); err == nil || !strings.Contains(err.Error(), "not linux/s390x") {
		t.Fatalf("another platform: %v", err)
	}
}

func TestSavedRepoTagsAreTagsAndDigestNamesMustMatch(t *testing.T) {
	s := openStore(t, "")
	load(t, s, archive(t, layered(), image.FormatOCI))
	img, _ := s.Get("example.com/layered:1")
	if _, err := s.Tag("example.com/layered:1", "example.com/app@"+digest.FromString("other").String()); err == nil {
		t.Fatal("tagged with a digest that is not the image's")
	}
	pinned := "example.com/app:v1@" + img.Target.Digest.String()
	if _, err := s.Tag("example.com/layered:1", pinned); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(&buf, []string{pinned}, image.FormatDocker); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"RepoTags":["example.com/app:v1"]`)) {
		t.Fatal("the saved RepoTags are not the name's tag alone")
	}
}
