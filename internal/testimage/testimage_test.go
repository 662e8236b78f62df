package testimage_test

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testimage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var mtime = time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)

// kitchenSink has every kind of entry, in an order that needs fixing: a
// hardlink before its target, children whose parents are implicit, an
// opaque whiteout that sorts after its siblings by plain byte order.
func kitchenSink() []testimage.File {
	return []testimage.File{
		{Path: "/a/hard", Hard: true, Link: "/z/target"},
		{Path: "z/target", Mode: 0o600, Data: []byte("target data"), UID: 1000, GID: 1001},
		{Path: "deep/er/file", Data: []byte("deep"), ModTime: mtime},
		{Path: "bin/su", Mode: 0o755 | fs.ModeSetuid, Data: []byte("#!/bin/sh\n")},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "link", Mode: fs.ModeSymlink, Link: "../z/target"},
		{Path: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Major: 1, Minor: 3},
		{Path: "dev/sda", Mode: fs.ModeDevice | 0o660, Major: 8, Minor: 0},
		{Path: "dev/fifo", Mode: fs.ModeNamedPipe},
		{Path: "xattr", Data: []byte("x"), Xattrs: map[string]string{"user.one": "1", "security.capability": "\x01\x00"}},
		testimage.Whiteout("/etc/gone"),
		{Path: "etc/AAA", Data: []byte("sorts before the opaque marker by bytes")},
		testimage.OpaqueWhiteout("etc"),
	}
}

func sinkImage() testimage.Image {
	return testimage.Image{
		Layers: []testimage.Layer{
			{Files: kitchenSink()},
			{Files: kitchenSink(), Compression: testimage.Zstd, CreatedBy: "second"},
			{Files: kitchenSink(), Compression: testimage.Uncompressed},
		},
		Config: ocispec.ImageConfig{
			Entrypoint:   []string{"/bin/sh"},
			Env:          []string{"A=1"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}},
			Labels:       map[string]string{"b": "2", "a": "1"},
		},
		Healthcheck: &testimage.Healthcheck{Test: []string{"CMD", "true"}, Interval: time.Second},
		RepoTags:    []string{"berth.test/sink:v1", "berth.test/sink:latest"},
		Name:        "berth.test/sink:v1",
	}
}

func TestOCILayout(t *testing.T) {
	dir := t.TempDir()
	desc, err := sinkImage().WriteOCILayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	imgs := readLayout(t, dir)
	if len(imgs) != 1 {
		t.Fatalf("%d images", len(imgs))
	}
	img := imgs[0]
	if img.desc.Digest != desc.Digest || img.desc.Size != desc.Size {
		t.Errorf("WriteOCILayout returned %v, index.json has %v", desc, img.desc)
	}
	if got := img.desc.Annotations[ocispec.AnnotationRefName]; got != "berth.test/sink:v1" {
		t.Errorf("ref.name %q", got)
	}
	if p := img.desc.Platform; p == nil || p.OS != "linux" || p.Architecture != runtime.GOARCH {
		t.Errorf("index platform %+v", p)
	}
	wantTypes := []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayer}
	for i, l := range img.manifest.Layers {
		if l.MediaType != wantTypes[i] {
			t.Errorf("layer %d mediaType %q, want %q", i, l.MediaType, wantTypes[i])
		}
	}
	c := img.config
	if c.OS != "linux" || c.Architecture != runtime.GOARCH {
		t.Errorf("config platform %s/%s", c.OS, c.Architecture)
	}
	if c.Created == nil || !c.Created.Equal(testimage.Epoch) {
		t.Errorf("created %v", c.Created)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{"/bin/sh"}) || c.Config.Labels["b"] != "2" {
		t.Errorf("config %+v", c.Config)
	}
	if c.History[0].CreatedBy == "" || c.History[1].CreatedBy != "second" {
		t.Errorf("history %+v", c.History)
	}
	hc, _ := img.rawCfg["config"].(map[string]any)["Healthcheck"].(map[string]any)
	if hc == nil || hc["Interval"] != float64(time.Second) {
		t.Errorf("Healthcheck %v", hc)
	}
	for i, layer := range img.layers {
		checkSink(t, i, layer)
	}
}

// checkSink checks the entries kitchenSink turns into.
func checkSink(t *testing.T, layer int, entries []entry) {
	t.Helper()
	byName := map[string]*tar.Header{}
	var names []string
	for _, e := range entries {
		byName[e.hdr.Name] = e.hdr
		names = append(names, e.hdr.Name)
	}
	want := []string{
		"a/", "a/hard", "bin/", "bin/su", "deep/", "deep/er/", "deep/er/file",
		"dev/", "dev/fifo", "dev/null", "dev/sda",
		"etc/", "etc/.wh..wh..opq", "etc/.wh.gone", "etc/AAA",
		"link", "tmp/", "xattr", "z/", "z/target",
	}
	// The hardlink waits for its target, which comes last.
	want = append(slices.Delete(want, 1, 2), "a/hard")
	if !slices.Equal(names, want) {
		t.Fatalf("layer %d entries\n%q, want\n%q", layer, names, want)
	}
	check := func(name string, typ byte, mode int64) *tar.Header {
		t.Helper()
		h := byName[name]
		if h.Typeflag != typ || h.Mode != mode {
			t.Errorf("layer %d %s: typeflag %c mode %o, want %c %o", layer, name, h.Typeflag, h.Mode, typ, mode)
		}
		return h
	}
	check("a/", tar.TypeDir, 0o755)
	check("tmp/", tar.TypeDir, 0o1777)
	check("bin/su", tar.TypeReg, 0o4755)
	if h := check("z/target", tar.TypeReg, 0o600); h.Uid != 1000 || h.Gid != 1001 || h.Size != 11 {
		t.Errorf("z/target: uid %d gid %d size %d", h.Uid, h.Gid, h.Size)
	}
	if h := check("a/hard", tar.TypeLink, 0o644); h.Linkname != "z/target" || h.Size != 0 {
		t.Errorf("hardlink to %q, size %d", h.Linkname, h.Size)
	}
	if h := check("link", tar.TypeSymlink, 0o777); h.Linkname != "../z/target" {
		t.Errorf("symlink to %q", h.Linkname)
	}
	if h := check("dev/null", tar.TypeChar, 0o666); h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("dev/null %d,%d", h.Devmajor, h.Devminor)
	}
	if h := check("dev/sda", tar.TypeBlock, 0o660); h.Devmajor != 8 || h.Devminor != 0 {
		t.Errorf("dev/sda %d,%d", h.Devmajor, h.Devminor)
	}
	check("dev/fifo", tar.TypeFifo, 0o666)
	check("etc/.wh..wh..opq", tar.TypeReg, 0o644)
	h := check("xattr", tar.TypeReg, 0o644)
	if h.PAXRecords["SCHILY.xattr.user.one"] != "1" || h.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x00" {
		t.Errorf("xattr PAX records %q", h.PAXRecords)
	}
	if !byName["deep/er/file"].ModTime.Equal(mtime) || !byName["deep/er/"].ModTime.Equal(testimage.Epoch) {
		t.Errorf("mtimes %v %v", byName["deep/er/file"].ModTime, byName["deep/er/"].ModTime)
	}
}

func TestOCIArchive(t *testing.T) {
	var buf bytes.Buffer
	if err := sinkImage().WriteOCIArchive(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	names := untar(t, buf.Bytes(), dir)
	for _, n := range []string{"oci-layout", "index.json", "blobs/", "blobs/sha256/"} {
		if !slices.Contains(names, n) {
			t.Errorf("archive has no %s: %q", n, names)
		}
	}
	imgs := readLayout(t, dir)
	want, err := sinkImage().WriteOCILayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].desc.Digest != want.Digest {
		t.Fatalf("archive holds %v, the layout %v", imgs, want.Digest)
	}
}

func TestDockerArchive(t *testing.T) {
	img := sinkImage()
	img.Layers[0].Compression = testimage.Gzip
	img.Layers[1].Compression = "" // the format's own: plain tar
	var buf bytes.Buffer
	if err := img.WriteDockerArchive(&buf); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range readLayerTar(t, buf.Bytes(), true) {
		files[e.hdr.Name] = e.data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	unmarshal(t, files["manifest.json"], &manifest)
	if len(manifest) != 1 {
		t.Fatalf("manifest.json has %d entries", len(manifest))
	}
	m := manifest[0]
	if !slices.Equal(m.RepoTags, img.RepoTags) {
		t.Errorf("RepoTags %q", m.RepoTags)
	}
	cfgData := files[m.Config]
	if m.Config != sha256Hex(cfgData)+".json" {
		t.Errorf("config %s does not hash to its name", m.Config)
	}
	var cfg ocispec.Image
	unmarshal(t, cfgData, &cfg)
	if len(m.Layers) != 3 || len(cfg.RootFS.DiffIDs) != 3 {
		t.Fatalf("layers %q, diff_ids %q", m.Layers, cfg.RootFS.DiffIDs)
	}
	for i, p := range m.Layers {
		dir, base := path.Split(p)
		if base != "layer.tar" || string(files[dir+"VERSION"]) != "1.0" || files[dir+"json"] == nil {
			t.Errorf("layer %d: %s, VERSION %q", i, p, files[dir+"VERSION"])
		}
		raw := files[p]
		// The first layer asks for gzip, which docker archives allow.
		if i == 0 {
			raw = decompress(t, ocispec.MediaTypeImageLayerGzip, raw)
		}
		if got := digestOf(raw); got != string(cfg.RootFS.DiffIDs[i]) {
			t.Errorf("layer %d: digest %s, diff_id %s", i, got, cfg.RootFS.DiffIDs[i])
		}
		checkSink(t, i, readLayerTar(t, raw, true))
	}
	// Identical layers at different depths still get directories of their own.
	if m.Layers[1] == m.Layers[2] {
		t.Errorf("layers 1 and 2 share %s", m.Layers[1])
	}
	var repos map[string]map[string]string
	unmarshal(t, files["repositories"], &repos)
	top := path.Dir(m.Layers[2])
	if repos["berth.test/sink"]["v1"] != top || repos["berth.test/sink"]["latest"] != top {
		t.Errorf("repositories %v, top layer %s", repos, top)
	}
	// The same config as in an OCI layout: one writer of configs.
	dir := t.TempDir()
	if _, err := img.WriteOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	if oci := readLayout(t, dir)[0]; oci.manifest.Config.Digest.Encoded()+".json" != m.Config {
		t.Errorf("docker config %s, OCI config %s", m.Config, oci.manifest.Config.Digest)
	}
}

func TestDockerArchiveOCI(t *testing.T) {
	img := sinkImage()
	var buf bytes.Buffer
	if err := img.WriteDockerArchiveOCI(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untar(t, buf.Bytes(), dir)
	imgs := readLayout(t, dir)
	if len(imgs) != 2 {
		t.Fatalf("%d index entries, want one per tag", len(imgs))
	}
	for i, tag := range []string{"v1", "latest"} {
		a := imgs[i].desc.Annotations
		if a["io.containerd.image.name"] != img.RepoTags[i] || a[ocispec.AnnotationRefName] != tag {
			t.Errorf("entry %d annotations %v", i, a)
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	unmarshal(t, data, &manifest)
	m, oci := manifest[0], imgs[0]
	if m.Config != "blobs/sha256/"+oci.manifest.Config.Digest.Encoded() {
		t.Errorf("Config %s, manifest's %s", m.Config, oci.manifest.Config.Digest)
	}
	for i, l := range oci.manifest.Layers {
		if m.Layers[i] != "blobs/sha256/"+l.Digest.Encoded() {
			t.Errorf("layer %d: %s, manifest's %s", i, m.Layers[i], l.Digest)
		}
	}
	// Plain tar is the format's own; an explicit compression is kept.
	for i, want := range []string{ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayer} {
		if got := oci.manifest.Layers[i].MediaType; got != want {
			t.Errorf("layer %d: %s, want %s", i, got, want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	shuffled := sinkImage()
	for i := range shuffled.Layers {
		files := shuffled.Layers[i].Files
		rand.New(rand.NewPCG(1, uint64(i))).Shuffle(len(files), func(a, b int) { files[a], files[b] = files[b], files[a] })
	}
	var digests []string
	for _, img := range []testimage.Image{sinkImage(), sinkImage(), shuffled} {
		desc, err := img.WriteOCILayout(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, string(desc.Digest))
	}
	if digests[0] != digests[1] || digests[0] != digests[2] {
		t.Errorf("manifest digests differ: %q", digests)
	}
	changed := sinkImage()
	changed.Layers[0].Files[1].Data = []byte("other")
	if desc, _ := changed.WriteOCILayout(t.TempDir()); string(desc.Digest) == digests[0] {
		t.Error("different content, same digest")
	}
	writers := map[string]func(testimage.Image, *bytes.Buffer) error{
		"oci-archive":    func(img testimage.Image, b *bytes.Buffer) error { return img.WriteOCIArchive(b) },
		"docker-archive": func(img testimage.Image, b *bytes.Buffer) error { return img.WriteDockerArchive(b) },
		"docker-oci":     func(img testimage.Image, b *bytes.Buffer) error { return img.WriteDockerArchiveOCI(b) },
	}
	for name, write := range writers {
		var a, b bytes.Buffer
		if err := write(sinkImage(), &a); err != nil {
			t.Fatal(err)
		}
		if err := write(shuffled, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: two writes of the same image differ", name)
		}
	}
}

func TestOCIIndex(t *testing.T) {
	shared := testimage.Layer{Files: []testimage.File{{Path: "etc/shared", Data: []byte("both")}}}
	amd := testimage.Image{
		Layers:   []testimage.Layer{shared, {Files: []testimage.File{{Path: "arch", Data: []byte("amd64")}}}},
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Name:     "multi:amd64",
	}
	arm := testimage.Image{
		Layers:   []testimage.Layer{shared, {Files: []testimage.File{{Path: "arch", Data: []byte("arm64")}}}},
		Platform: ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
	}
	dir := t.TempDir()
	if err := testimage.WriteOCIIndex(dir, amd, arm); err != nil {
		t.Fatal(err)
	}
	imgs := readLayout(t, dir)
	if len(imgs) != 2 {
		t.Fatalf("%d images", len(imgs))
	}
	checkPlatforms(t, imgs)
	if imgs[0].desc.Annotations[ocispec.AnnotationRefName] != "multi:amd64" || imgs[1].desc.Annotations != nil {
		t.Errorf("annotations %v %v", imgs[0].desc.Annotations, imgs[1].desc.Annotations)
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	// 2 manifests, 2 configs, 1 shared layer, 2 own layers.
	if len(blobs) != 7 {
		t.Errorf("%d blobs, want 7: the shared layer once", len(blobs))
	}

	dir = t.TempDir()
	desc, err := testimage.WriteOCINestedIndex(dir, "berth.test/multi:latest", amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	var top ocispec.Index
	data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	unmarshal(t, data, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != ocispec.MediaTypeImageIndex ||
		top.Manifests[0].Digest != desc.Digest || top.Manifests[0].Annotations[ocispec.AnnotationRefName] != "berth.test/multi:latest" {
		t.Errorf("index.json %s", data)
	}
	imgs = readLayout(t, dir)
	checkPlatforms(t, imgs)
}

func checkPlatforms(t *testing.T, imgs []readImage) {
	t.Helper()
	for i, want := range []string{"linux/amd64/", "linux/arm64/v8"} {
		p := imgs[i].desc.Platform
		c := imgs[i].config
		if p == nil || p.OS+"/"+p.Architecture+"/"+p.Variant != want || c.OS+"/"+c.Architecture+"/"+c.Variant != want {
			t.Errorf("image %d: index platform %+v, config %s/%s/%s, want %s", i, p, c.OS, c.Architecture, c.Variant, want)
		}
		if got := string(imgs[i].layers[1][0].data); !strings.HasPrefix(want, "linux/"+got) {
			t.Errorf("image %d has the %s layer", i, got)
		}
	}
}

func TestAsIs(t *testing.T) {
	img := testimage.Image{Layers: []testimage.Layer{{AsIs: true, Files: []testimage.File{
		{Path: "a/b/c", Data: []byte("child first")},
		{Path: "a/", Mode: fs.ModeDir},
		{Path: "../escape", Data: []byte("x")},
		{Path: "/abs", Hard: true, Link: "/a/b/c"},
		{Path: "a/b/c", Data: []byte("again")},
	}}}}
	dir := t.TempDir()
	desc, err := img.WriteOCILayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	unmarshal(t, readBlob(t, dir, desc), &m)
	raw := decompress(t, m.Layers[0].MediaType, readBlob(t, dir, m.Layers[0]))
	var got []string
	for _, e := range readLayerTar(t, raw, false) {
		got = append(got, e.hdr.Name+">"+e.hdr.Linkname)
	}
	want := []string{"a/b/c>", "a/>", "../escape>", "/abs>/a/b/c", "a/b/c>"}
	if !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
}

func TestErrors(t *testing.T) {
	for name, l := range map[string]testimage.Layer{
		"duplicate":   {Files: []testimage.File{{Path: "a"}, {Path: "/a"}}},
		"cycle":       {Files: []testimage.File{{Path: "a", Hard: true, Link: "b"}, {Path: "b", Hard: true, Link: "a"}}},
		"root":        {Files: []testimage.File{{Path: "/", Mode: fs.ModeDir}}},
		"socket":      {Files: []testimage.File{{Path: "s", Mode: fs.ModeSocket}}},
		"compression": {Compression: "lz4"},
	} {
		img := testimage.Image{Layers: []testimage.Layer{l}}
		if _, err := img.WriteOCILayout(t.TempDir()); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := img.WriteDockerArchive(&bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error from the docker writer", name)
		}
	}
}

func TestBusybox(t *testing.T) {
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := img.WriteOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	got := readLayout(t, dir)[0]
	if !slices.Equal(got.config.Config.Cmd, []string{"sh"}) || !slices.Equal(got.config.Config.Env, []string{testimage.DefaultPath}) {
		t.Errorf("config %+v", got.config.Config)
	}
	entries := got.layers[0]
	byName := map[string]entry{}
	for _, e := range entries {
		byName[e.hdr.Name] = e
	}
	if h := byName["tmp/"].hdr; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/ %+v", h)
	}
	passwd := string(byName["etc/passwd"].data)
	if !strings.Contains(passwd, "root:x:0:0:") || !strings.Contains(passwd, "nobody:x:65534:65534:") {
		t.Errorf("passwd %q", passwd)
	}
	if !strings.Contains(string(byName["etc/group"].data), ":65534:") {
		t.Errorf("group %q", byName["etc/group"].data)
	}

	root := t.TempDir()
	extractRootfs(t, entries, root)
	list, err := runIn(root, "bin/busybox", "--list")
	if err != nil {
		t.Fatalf("bin/busybox --list: %v", err)
	}
	applets := strings.Fields(list)
	for _, a := range testimage.Applets {
		if !slices.Contains(applets, a) {
			t.Errorf("busybox has no %s applet", a)
		}
		if h := byName["bin/"+a].hdr; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s: %+v", a, h)
		}
	}
	if _, err := runIn(root, "bin/true"); err != nil {
		t.Errorf("bin/true: %v", err)
	}
	if out, err := runIn(root, "bin/sh", "-c", "echo $((6*7))"); err != nil || out != "42\n" {
		t.Errorf("bin/sh: %q %v", out, err)
	}
}

func TestEchoServerImage(t *testing.T) {
	img, err := testimage.EchoServer()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := img.WriteOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	got := readLayout(t, dir)[0]
	c := got.config.Config
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || !slices.Equal(c.Entrypoint, []string{"/echoserver"}) || c.StopSignal != "SIGTERM" {
		t.Errorf("config %+v", c)
	}
	hc, _ := got.rawCfg["config"].(map[string]any)["Healthcheck"].(map[string]any)
	if test, _ := hc["Test"].([]any); len(test) != 2 || !strings.Contains(test[1].(string), "/healthz") {
		t.Errorf("Healthcheck %v", hc)
	}
	if len(got.layers) != 2 || len(got.layers[1]) != 1 || got.layers[1][0].hdr.Name != "echoserver" {
		t.Fatalf("layers %d, top %v", len(got.layers), got.layers[1])
	}
	// The base is Busybox's layer byte for byte, so stores share it.
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	bbDir := t.TempDir()
	if _, err := bb.WriteOCILayout(bbDir); err != nil {
		t.Fatal(err)
	}
	if base := readLayout(t, bbDir)[0].manifest.Layers[0]; base.Digest != got.manifest.Layers[0].Digest {
		t.Errorf("base layer %s, busybox's %s", got.manifest.Layers[0].Digest, base.Digest)
	}
	// Reproducible: the digest must not change with the checkout's path,
	// its git state or the build ID.
	bin := got.layers[1][0].data
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" || settings["vcs.revision"] != "" || settings["vcs.modified"] != "" {
		t.Errorf("echoserver build settings %v", settings)
	}
	if f, err := elf.NewFile(bytes.NewReader(bin)); err != nil {
		t.Error(err)
	} else {
		if f.Section(".note.go.buildid") != nil {
			t.Error("the echoserver carries a build ID")
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the echoserver is dynamically linked")
			}
		}
	}

	root := t.TempDir()
	extractRootfs(t, got.layers[1], root)
	runEchoServer(t, filepath.Join(root, "echoserver"))
}

func TestLarge(t *testing.T) {
	// Enough for a full directory: files average about 56 KiB.
	const total = 24 << 20
	dir := t.TempDir()
	desc, err := testimage.LargeOCILayout(dir, 2, total, 7)
	if err != nil {
		t.Fatal(err)
	}
	img := readLayout(t, dir)[0]
	if img.desc.Digest != desc.Digest || len(img.layers) != 2 {
		t.Fatalf("%d layers", len(img.layers))
	}
	var regular int64
	kinds := map[byte]int{}
	perDir := map[string]int{}
	for _, l := range img.layers {
		for _, e := range l {
			kinds[e.hdr.Typeflag]++
			if e.hdr.Typeflag == tar.TypeReg {
				regular += e.hdr.Size
				perDir[path.Dir(e.hdr.Name)]++
			}
		}
	}
	if regular != total {
		t.Errorf("files hold %d bytes, want %d", regular, total)
	}
	if kinds[tar.TypeSymlink] == 0 || kinds[tar.TypeLink] == 0 || kinds[tar.TypeDir] < 6 {
		t.Errorf("entry kinds %v", kinds)
	}
	full := 0
	for _, n := range perDir {
		if n > 300 {
			t.Errorf("a directory of %d files", n)
		}
		if n >= 200 {
			full++
		}
	}
	if full == 0 {
		t.Errorf("no directory of a few hundred files: %v", perDir)
	}
	if ratio := float64(img.blobBytes) / float64(img.tarBytes); ratio < 0.3 || ratio > 0.7 {
		t.Errorf("layers compress to %.2f of their size", ratio)
	}

	var digests []string
	for _, seed := range []int64{7, 7, 8} {
		d, err := testimage.LargeOCILayout(t.TempDir(), 3, 1<<20, seed)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, string(d.Digest))
	}
	if digests[0] != digests[1] || digests[0] == digests[2] {
		t.Errorf("seeds 7, 7, 8 give %q", digests)
	}
	// Generated layers go through the archive writers as well.
	var buf bytes.Buffer
	if err := testimage.Large(2, 1<<20, 1).WriteDockerArchive(&buf); err != nil {
		t.Fatal(err)
	}
}
