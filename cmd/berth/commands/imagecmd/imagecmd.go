// Package imagecmd is `berth image`: the image store on the command line
// (import, load, save, list, inspect, tag, remove, prune, unpack into a
// bundle).
package imagecmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/snapshot"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Globals are the flags of the berth command that image commands use.
type Globals struct {
	// Root is the store's directory (--root, BERTH_ROOT).
	Root        string
	Snapshotter string
	Log         *slog.Logger
}

func (g *Globals) open() (*image.Store, error) {
	return image.Open(g.Root, image.Options{Snapshotter: snapshot.Driver(g.Snapshotter), Logger: g.Log})
}

// withStore makes a command's RunE that opens the store first.
func (g *Globals) withStore(run func(cmd *cobra.Command, args []string, s *image.Store) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := g.open()
		if err != nil {
			return err
		}
		return run(cmd, args, s)
	}
}

// New returns the image command tree.
func New(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images: import, load, save, list, inspect, tag, remove, prune, unpack",
		Long: `Manage the images in Berth's store (--root, default /var/lib/berth).

Images are kept as in containerd: blobs by digest in a content store, names in
a database, and layers unpacked once into snapshots that every image with the
same layers shares. Names are normalized as Docker does: "busybox" is
docker.io/library/busybox:latest.`,
	}
	cmd.AddCommand(PullCmd(g), PushCmd(g), importCmd(g), loadCmd(g), saveCmd(g), lsCmd(g), inspectCmd(g), rmCmd(g), tagCmd(g), pruneCmd(g), unpackCmd(g))
	return cmd
}

// output writes v as JSON or YAML, or calls table for the human form.
func output(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case "", "table":
		if table != nil {
			return table(w)
		}
		fallthrough
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("output format %q: want table, json or yaml", format)
}

func completeFormats(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp
}

// completeImages offers the store's image names.
func completeImages(g *Globals) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		s, err := g.open()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		all, err := s.List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, i := range all {
			names = append(names, image.FamiliarName(i.Name))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func openInput(name string) (io.ReadCloser, error) {
	if name == "" || name == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(name)
}

func importCmd(g *Globals) *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import FILE|- NAME",
		Short: "Make a one-layer image from a root file system tar",
		Long: `Make a one-layer image from a root file system tar (plain, gzip or zstd; "-"
reads standard input), as "docker import" does.

  berth image import rootfs.tar.gz myimage:1.0
  tar -C rootfs -c . | berth image import --change 'CMD ["sh"]' - busybox`,
		Args: cobra.ExactArgs(2),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			in, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			img, err := s.Import(in, args[1], image.ImportOptions{Changes: changes, Message: message, Platform: platform})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.ID)
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "comment for the image's history")
	cmd.Flags().StringVar(&platform, "platform", "", "platform the image declares (os/arch[/variant]; default this host's)")
	return cmd
}

func loadCmd(g *Globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from a docker-archive or OCI archive",
		Long: `Load the images of a tar archive written by "docker save" (docker-archive) or
an OCI image layout as a tar ("podman save --format oci-archive", skopeo's
oci-archive), plain or compressed, from a file or standard input.`,
		Args: cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, s *image.Store) error {
			in, err := openInput(input)
			if err != nil {
				return err
			}
			defer in.Close()
			names, err := s.Load(in)
			if err != nil {
				return err
			}
			if !quiet {
				for _, n := range names {
					fmt.Fprintln(cmd.OutOrStdout(), "Loaded image:", image.FamiliarName(n))
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&input, "input", "i", "-", "archive to read (\"-\": standard input)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	return cmd
}

func saveCmd(g *Globals) *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "save -o FILE NAME...",
		Short: "Write images to a docker-archive or OCI archive",
		Long: `Write images to one tar archive: docker-archive (the default; what "docker load"
and "podman load" read, and an OCI layout at the same time) or oci-archive (the
whole index of each image, every platform the store has).`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeImages(g),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			if out == "" || out == "-" {
				if isTerminal(os.Stdout) {
					return errors.New("refusing to write an archive to a terminal: give -o FILE or redirect")
				}
				return s.Save(os.Stdout, args, format)
			}
			// Written beside the target and renamed: no half archive
			// under the name asked for.
			tmp, err := os.CreateTemp(filepath.Dir(out), ".berth-save-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := s.Save(tmp, args, format); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			return os.Rename(tmp.Name(), out)
		}),
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default standard output)")
	cmd.Flags().StringVar(&format, "format", image.FormatDocker, "archive format: docker-archive or oci-archive")
	_ = cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{image.FormatDocker, image.FormatOCI}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// listed is one row of ls.
type listed struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
}

func lsCmd(g *Globals) *cobra.Command {
	var format string
	var quiet, digests bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, s *image.Store) error {
			// Records, then one Describe each: the manifest and config
			// are read once per image (Describe finds the ID too).
			all, err := s.Records()
			if err != nil {
				return err
			}
			rows := make([]listed, 0, len(all))
			for _, rec := range all {
				d, err := s.Describe(image.Image{Image: rec, ID: rec.Target.Digest})
				if err != nil {
					g.Log.Warn("describe image", "name", rec.Name, "err", err)
				}
				rows = append(rows, listed{Name: rec.Name, ID: d.ID.String(), Digest: rec.Target.Digest.String(), Created: d.Created, Size: d.Size})
			}
			w := cmd.OutOrStdout()
			if quiet {
				seen := map[string]bool{}
				for _, r := range rows {
					if !seen[r.ID] {
						fmt.Fprintln(w, shortID(r.ID))
						seen[r.ID] = true
					}
				}
				return nil
			}
			return output(w, format, rows, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
				head := "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE"
				if digests {
					head = "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE"
				}
				fmt.Fprintln(tw, head)
				for _, r := range rows {
					repo, tag := splitName(r.Name)
					created := "N/A"
					if !r.Created.IsZero() {
						created = units.HumanDuration(time.Since(r.Created)) + " ago"
					}
					cols := []string{repo, tag}
					if digests {
						cols = append(cols, r.Digest)
					}
					cols = append(cols, shortID(r.ID), created, units.HumanSizeWithPrecision(float64(r.Size), 3))
					fmt.Fprintln(tw, strings.Join(cols, "\t"))
				}
				return tw.Flush()
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print image IDs only")
	cmd.Flags().BoolVar(&digests, "digests", false, "show the manifest digests")
	_ = cmd.RegisterFlagCompletionFunc("output", completeFormats)
	return cmd
}

// splitName splits a stored name into docker's REPOSITORY and TAG columns.
func splitName(name string) (string, string) {
	if strings.HasPrefix(name, "sha256:") {
		return "<none>", "<none>"
	}
	f := image.FamiliarName(name)
	if repo, dig, ok := strings.Cut(f, "@"); ok {
		return repo, "<none>@" + dig
	}
	if i := strings.LastIndex(f, ":"); i > strings.LastIndex(f, "/") {
		return f[:i], f[i+1:]
	}
	return f, "<none>"
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func inspectCmd(g *Globals) *cobra.Command {
	var format, platform string
	cmd := &cobra.Command{
		Use:               "inspect NAME...",
		Short:             "Show images' records, manifests and configs",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeImages(g),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			var out []image.Description
			var errs []error
			for _, a := range args {
				img, err := s.Get(a)
				if err == nil {
					var d image.Description
					if d, err = s.DescribePlatform(img, platform); err == nil {
						out = append(out, d)
						continue
					}
				}
				errs = append(errs, err)
			}
			if format == "table" {
				format = "json"
			}
			if len(out) > 0 {
				if err := output(cmd.OutOrStdout(), format, out, nil); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		}),
	}
	cmd.Flags().StringVarP(&format, "output", "o", "json", "output format: json or yaml")
	cmd.Flags().StringVar(&platform, "platform", "", "which manifest of a multi-platform image (default this host's)")
	_ = cmd.RegisterFlagCompletionFunc("output", completeFormats)
	return cmd
}

func rmCmd(g *Globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:               "rm NAME|ID...",
		Aliases:           []string{"remove", "rmi"},
		Short:             "Remove image names (content goes at the next prune)",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeImages(g),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			var errs []error
			for _, a := range args {
				names, err := s.Remove(a, force)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, n := range names {
					fmt.Fprintln(cmd.OutOrStdout(), "Untagged:", image.FamiliarName(n))
				}
			}
			return errors.Join(errs...)
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "given an ID with several names, remove them all")
	return cmd
}

func tagCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:               "tag SOURCE TARGET",
		Short:             "Give an image another name",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeImages(g),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			_, err := s.Tag(args[0], args[1])
			return err
		}),
	}
}

func pruneCmd(g *Globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove content and snapshots that no image, container or lease uses",
		Long: `Collect garbage: blobs that no image refers to (through its index, manifests
and config) and no load or unpack in progress holds, layer snapshots that no
image and no container root is built on, and what interrupted commands left.`,
		Args: cobra.NoArgs,
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, s *image.Store) error {
			res, err := s.Prune()
			if err != nil {
				return err
			}
			return output(cmd.OutOrStdout(), format, res, func(w io.Writer) error {
				sort.Slice(res.Blobs, func(i, j int) bool { return res.Blobs[i] < res.Blobs[j] })
				for _, b := range res.Blobs {
					fmt.Fprintln(w, "deleted:", b)
				}
				for _, sn := range res.Snapshots {
					fmt.Fprintln(w, "deleted snapshot:", sn)
				}
				fmt.Fprintf(w, "Total reclaimed space: %s\n", units.HumanSize(float64(res.BlobBytes)))
				return nil
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", completeFormats)
	return cmd
}
