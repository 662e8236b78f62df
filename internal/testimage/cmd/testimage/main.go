// Command testimage writes one of Berth's test images to a file or
// directory, for benchmark and shell scripts:
//
//	testimage -busybox -format oci-archive -o busybox.tar
//	testimage -echoserver -format docker-archive -o echo.tar
//	testimage -large 1G -layers 8 -format oci-layout -o /tmp/large
//
// For oci-layout it prints the manifest digest. "-o -" writes an archive
// to standard output.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/testimage"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fset := flag.NewFlagSet("testimage", flag.ContinueOnError)
	busybox := fset.Bool("busybox", false, "the busybox image")
	echo := fset.Bool("echoserver", false, "the echoserver image (needs the berth source tree and go)")
	large := fset.String("large", "", "a generated image of about `SIZE` bytes (suffixes K, M, G: powers of 1024)")
	layers := fset.Int("layers", 4, "layers of the -large image")
	seed := fset.Int64("seed", 1, "seed of the -large image's content")
	format := fset.String("format", "oci-layout", "oci-layout, oci-archive, docker-archive or docker-archive-oci (Docker 25+)")
	compression := fset.String("compression", "", "gzip, zstd or none for every layer (default: the format's own)")
	name := fset.String("name", "", "name and tag to give the image instead of its own")
	variants := fset.Int("variants", 0, "with -large: write `N` images that share the large layers, each with a small layer of its own on top (berth.test/large-K:latest), as one oci-layout or oci-archive")
	out := fset.String("o", "", "output `PATH`: a directory for oci-layout, a file or - for archives")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fset.Args())
	}
	if *out == "" {
		return errors.New("-o is required")
	}
	chosen := 0
	for _, b := range []bool{*busybox, *echo, *large != ""} {
		if b {
			chosen++
		}
	}
	if chosen != 1 {
		return errors.New("give exactly one of -busybox, -echoserver, -large SIZE")
	}

	var img testimage.Image
	var err error
	switch {
	case *busybox:
		img, err = testimage.Busybox()
	case *echo:
		img, err = testimage.EchoServer()
	default:
		var size int64
		if size, err = parseSize(*large); err == nil {
			img = testimage.Large(*layers, size, *seed)
		}
	}
	if err != nil {
		return err
	}
	if *compression != "" {
		for i := range img.Layers {
			img.Layers[i].Compression = *compression
		}
	}
	if *name != "" {
		img.Name, img.RepoTags = *name, []string{*name}
	}

	if *variants > 0 {
		if *large == "" {
			return errors.New("-variants needs -large")
		}
		return writeVariants(img, *variants, *format, *out, stdout)
	}
	if *format == "oci-layout" {
		desc, err := img.WriteOCILayout(*out)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, desc.Digest)
		return nil
	}
	var write func(io.Writer) error
	switch *format {
	case "oci-archive":
		write = img.WriteOCIArchive
	case "docker-archive":
		write = img.WriteDockerArchive
	case "docker-archive-oci":
		write = img.WriteDockerArchiveOCI
	default:
		return fmt.Errorf("unknown -format %q", *format)
	}
	if *out == "-" {
		bw := bufio.NewWriterSize(stdout, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = errors.Join(write(bw), bw.Flush(), f.Close())
	if err != nil {
		os.Remove(*out)
	}
	return err
}

// writeVariants writes n images on the same base layers, to measure how
// a store shares them.
func writeVariants(base testimage.Image, n int, format, out string, stdout io.Writer) error {
	var imgs []testimage.Image
	for k := range n {
		img := base
		img.Layers = append(base.Layers[:len(base.Layers):len(base.Layers)], testimage.Layer{
			Files: []testimage.File{{Path: "variant", Data: []byte(strconv.Itoa(k))}},
		})
		img.Name = fmt.Sprintf("berth.test/large-%d:latest", k)
		img.RepoTags = []string{img.Name}
		imgs = append(imgs, img)
	}
	switch format {
	case "oci-layout":
		return testimage.WriteOCIIndex(out, imgs...)
	case "oci-archive":
		dir, err := os.MkdirTemp("", "testimage-variants-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := testimage.WriteOCIIndex(dir, imgs...); err != nil {
			return err
		}
		w := stdout
		if out != "-" {
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		return testimage.ArchiveLayout(w, dir)
	}
	return fmt.Errorf("-variants writes oci-layout or oci-archive, not %q", format)
}

// parseSize reads "1073741824", "512M", "1G", "1GiB" or "64k".
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	shift := 0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * float64(int64(1)<<shift)), nil
}
