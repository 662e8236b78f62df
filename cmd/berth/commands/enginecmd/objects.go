package enginecmd

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// PullThroughDaemon pulls with the daemon's registry client.
func PullThroughDaemon(g *Globals, cmd *cobra.Command, ref string, quiet bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := pull(cmd.Context(), c, ref, cmd.OutOrStdout(), quiet); err != nil {
		return g.explain(err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), ref)
	return nil
}

// ImagesCmd is `berth images`.
func ImagesCmd(g *Globals) *cobra.Command {
	var quiet bool
	out := &output{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the daemon's images",
		Args:  cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			res, err := c.ImageList(cmd.Context(), client.ImageListOptions{})
			if err != nil {
				return err
			}
			var rows [][]string
			var objs, data []any
			for _, img := range res.Items {
				if quiet {
					fmt.Fprintln(cmd.OutOrStdout(), shortID(img.ID))
					continue
				}
				tags := img.RepoTags
				if len(tags) == 0 {
					tags = []string{"<none>:<none>"}
				}
				for _, t := range tags {
					repo, tag := t, "<none>"
					if i := strings.LastIndex(t, ":"); i > 0 && !strings.Contains(t[i:], "/") {
						repo, tag = t[:i], t[i+1:]
					}
					created := time.Unix(img.Created, 0)
					rows = append(rows, []string{repo, tag, shortID(img.ID), ago(created), humanSize(float64(img.Size))})
					data = append(data, map[string]any{"Repository": repo, "Tag": tag, "ID": shortID(img.ID), "CreatedSince": ago(created), "Size": humanSize(float64(img.Size))})
				}
				objs = append(objs, img)
			}
			if quiet {
				return nil
			}
			return out.print(cmd.OutOrStdout(), []string{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}, rows, objs, data)
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	out.flags(cmd)
	return cmd
}

// NetworkCmd is `berth network`.
func NetworkCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks: create, ls, inspect, rm",
		Long: `Manage networks. Each is a Linux bridge with its own subnet, wired through CNI
(bridge, host-local, portmap, firewall plugins). Containers on one network
reach each other by IP; published ports (-p) reach them from the host.`,
	}
	var subnet, gateway string
	var internal bool
	var labels []string
	create := &cobra.Command{
		Use:   "create [OPTIONS] NAME",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			o := client.NetworkCreateOptions{Driver: "bridge", Internal: internal, Labels: map[string]string{}}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				o.Labels[k] = v
			}
			if subnet != "" || gateway != "" {
				cfg := network.IPAMConfig{}
				if subnet != "" {
					p, err := netip.ParsePrefix(subnet)
					if err != nil {
						return fmt.Errorf("invalid --subnet %q: %v", subnet, err)
					}
					cfg.Subnet = p
				}
				if gateway != "" {
					a, err := netip.ParseAddr(gateway)
					if err != nil {
						return fmt.Errorf("invalid --gateway %q: %v", gateway, err)
					}
					cfg.Gateway = a
				}
				o.IPAM = &network.IPAM{Config: []network.IPAMConfig{cfg}}
			}
			res, err := c.NetworkCreate(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.ID)
			return nil
		}),
	}
	create.Flags().StringVar(&subnet, "subnet", "", "subnet in CIDR form (default: the next free 10.88.N.0/24)")
	create.Flags().StringVar(&gateway, "gateway", "", "gateway address (default: the subnet's first)")
	create.Flags().BoolVar(&internal, "internal", false, "no route out of the network")
	create.Flags().StringArrayVar(&labels, "label", nil, "set a label KEY=VALUE")
	out := &output{}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			res, err := c.NetworkList(cmd.Context(), client.NetworkListOptions{})
			if err != nil {
				return err
			}
			var rows [][]string
			var objs, data []any
			for _, n := range res.Items {
				subnet := ""
				if len(n.IPAM.Config) > 0 && n.IPAM.Config[0].Subnet.IsValid() {
					subnet = n.IPAM.Config[0].Subnet.String()
				}
				rows = append(rows, []string{shortID(n.ID), n.Name, n.Driver, subnet, n.Scope})
				objs = append(objs, n)
				data = append(data, map[string]any{"ID": shortID(n.ID), "Name": n.Name, "Driver": n.Driver, "Subnet": subnet, "Scope": n.Scope})
			}
			return out.print(cmd.OutOrStdout(), []string{"NETWORK ID", "NAME", "DRIVER", "SUBNET", "SCOPE"}, rows, objs, data)
		}),
	}
	out.flags(ls)
	var format string
	inspect := &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks in detail, with their containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			var objs []any
			for _, ref := range args {
				obj, err := inspectAny(cmd.Context(), c, "network", ref)
				if err != nil {
					return err
				}
				objs = append(objs, obj)
			}
			return printJSON(cmd.OutOrStdout(), format, objs)
		}),
	}
	inspect.Flags().StringVarP(&format, "format", "f", "", "format with a Go template")
	rm := &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			return each(cmd, args, func(ref string) error {
				_, err := c.NetworkRemove(cmd.Context(), ref, client.NetworkRemoveOptions{})
				return err
			})
		}),
	}
	cmd.AddCommand(create, ls, inspect, rm)
	return cmd
}

// VolumeCmd is `berth volume`.
func VolumeCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Manage volumes: create, ls, inspect, rm",
		Long: `Manage volumes: directories under the daemon's root (volumes/NAME/_data) that
outlive containers. -v NAME:/path mounts one (made on first use); -v /path or
an image's VOLUME makes an anonymous one, which rm -v removes with its
container.`,
	}
	var labels []string
	create := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			o := client.VolumeCreateOptions{Labels: map[string]string{}}
			if len(args) == 1 {
				o.Name = args[0]
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				o.Labels[k] = v
			}
			res, err := c.VolumeCreate(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Volume.Name)
			return nil
		}),
	}
	create.Flags().StringArrayVar(&labels, "label", nil, "set a label KEY=VALUE")
	out := &output{}
	var quiet bool
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			res, err := c.VolumeList(cmd.Context(), client.VolumeListOptions{})
			if err != nil {
				return err
			}
			var rows [][]string
			var objs, data []any
			for _, v := range res.Items {
				if quiet {
					fmt.Fprintln(cmd.OutOrStdout(), v.Name)
					continue
				}
				rows = append(rows, []string{v.Driver, v.Name})
				objs = append(objs, v)
				data = append(data, map[string]any{"Driver": v.Driver, "Name": v.Name, "Mountpoint": v.Mountpoint, "Labels": v.Labels})
			}
			if quiet {
				return nil
			}
			return out.print(cmd.OutOrStdout(), []string{"DRIVER", "VOLUME NAME"}, rows, objs, data)
		}),
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	out.flags(ls)
	var format string
	inspect := &cobra.Command{
		Use:   "inspect VOLUME...",
		Short: "Show volumes in detail",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			var objs []any
			for _, ref := range args {
				obj, err := inspectAny(cmd.Context(), c, "volume", ref)
				if err != nil {
					return err
				}
				objs = append(objs, obj)
			}
			return printJSON(cmd.OutOrStdout(), format, objs)
		}),
	}
	inspect.Flags().StringVarP(&format, "format", "f", "", "format with a Go template")
	var force bool
	rm := &cobra.Command{
		Use:     "rm VOLUME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			return each(cmd, args, func(ref string) error {
				_, err := c.VolumeRemove(cmd.Context(), ref, client.VolumeRemoveOptions{Force: force})
				return err
			})
		}),
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "do not complain about a missing volume")
	cmd.AddCommand(create, ls, inspect, rm)
	return cmd
}

// CpCmd is `berth cp`.
func CpCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cp CONTAINER:SRC DEST | SRC CONTAINER:DEST",
		Short: "Copy files between a container and the host",
		Long: `Copy a file or directory out of a container's root filesystem, or into it.
DEST "-" writes (or SRC "-" reads) a tar stream. Paths in the container
resolve inside its root: no symlink there leads out of it. Volumes and bind
mounts are not part of the root filesystem, so cp does not see into them.`,
		Args: cobra.ExactArgs(2),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			src, dst := args[0], args[1]
			sc, sp, sIn := strings.Cut(src, ":")
			dc, dp, dIn := strings.Cut(dst, ":")
			switch {
			case sIn && !dIn && !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, "."):
				return copyOut(cmd, c, sc, sp, dst)
			case dIn && !sIn && !strings.HasPrefix(dst, "/") && !strings.HasPrefix(dst, "."):
				return copyIn(cmd, c, src, dc, dp)
			}
			return errors.New("cp copies between a container and the host: one of SRC and DEST must be CONTAINER:PATH")
		}),
	}
}

func copyOut(cmd *cobra.Command, c *client.Client, ctr, src, dst string) error {
	res, err := c.CopyFromContainer(cmd.Context(), ctr, client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return err
	}
	defer res.Content.Close()
	if dst == "-" {
		_, err := io.Copy(cmd.OutOrStdout(), res.Content)
		return err
	}
	// Into an existing directory under the source's name; otherwise as
	// dst itself.
	target, rename := dst, ""
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		target = dst
	} else {
		target, rename = filepath.Dir(dst), filepath.Base(dst)
	}
	return untar(res.Content, target, res.Stat.Name, rename)
}

// untar writes a tar from the daemon under dir, renaming its top entry
// from top to rename if asked. Entries that would land outside dir are
// refused.
func untar(r io.Reader, dir, top, rename string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(h.Name)
		if rename != "" && (name == top || strings.HasPrefix(name, top+"/")) {
			name = rename + strings.TrimPrefix(name, top)
		}
		if name == ".." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return fmt.Errorf("refusing %q: it leads outside %s", h.Name, dir)
		}
		p := filepath.Join(dir, name)
		mode := os.FileMode(h.Mode) & 0o7777
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			os.Remove(p)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
		os.Chtimes(p, h.ModTime, h.ModTime)
	}
}

func copyIn(cmd *cobra.Command, c *client.Client, src, ctr, dst string) error {
	ctx := cmd.Context()
	var content io.Reader
	dir := dst
	if src == "-" {
		content = cmd.InOrStdin()
	} else {
		st, err := os.Lstat(src)
		if err != nil {
			return err
		}
		name := filepath.Base(src)
		// Into an existing directory under the source's name; otherwise
		// as dst itself, in its parent.
		if ds, err := c.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dst}); err != nil || !ds.Stat.Mode.IsDir() {
			if err != nil && !cerrdefs.IsNotFound(err) {
				return err
			}
			dir, name = path.Dir(dst), path.Base(dst)
		}
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(src, p)
				link := ""
				if info.Mode()&os.ModeSymlink != 0 {
					link, _ = os.Readlink(p)
				}
				h, err := tar.FileInfoHeader(info, link)
				if err != nil {
					return err
				}
				h.Name = path.Join(name, filepath.ToSlash(rel))
				if info.IsDir() {
					h.Name += "/"
				}
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				if info.Mode().IsRegular() {
					f, err := os.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = io.Copy(tw, f)
					return err
				}
				return nil
			})
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		_ = st
		content = pr
	}
	_, err := c.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: dir, Content: content})
	return err
}
