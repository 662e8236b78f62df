package imagecmd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/runspec"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/berth-dev/berth/internal/inroot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// bundleKey names the active snapshot behind a bundle's rootfs.
func bundleKey(dir string) string { return "bundle:" + dir }

// bundleFiles are what unpack writes into a bundle besides rootfs.
var bundleFiles = []string{"config.json", "hosts", "hostname", "resolv.conf"}

func unpackCmd(g *Globals) *cobra.Command {
	var o runspec.Options
	var platform, entrypoint string
	var setEntrypoint, remove bool
	cmd := &cobra.Command{
		Use:   "unpack NAME DIR [-- COMMAND [ARG...]]",
		Short: "Make an OCI bundle of an image, ready for berth runtime run",
		Long: `Make DIR an OCI bundle of the image: DIR/rootfs is a writable snapshot on the
image's layers (an overlay mount, or a copy where overlayfs cannot be used) and
DIR/config.json a runtime spec from the image's config with Docker's defaults
(capabilities, seccomp profile, masked paths, /etc/hosts, /etc/hostname,
/etc/resolv.conf). A COMMAND after "--" replaces the image's Cmd.

  berth image unpack busybox /tmp/bb -- sh -c 'echo hello'
  berth runtime run --bundle /tmp/bb hello
  berth image unpack --remove /tmp/bb

--remove unmounts DIR/rootfs, removes its snapshot and what unpack wrote.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if remove {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.MinimumNArgs(2)(cmd, args)
		},
		ValidArgsFunction: completeImages(g),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			if remove {
				dir, err := filepath.Abs(args[0])
				if err != nil {
					return err
				}
				return removeBundle(s, dir, false)
			}
			dir, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			if len(args) > 2 {
				o.Cmd = args[2:]
			}
			if setEntrypoint = cmd.Flags().Changed("entrypoint"); setEntrypoint {
				o.Entrypoint = []string{}
				if entrypoint != "" {
					o.Entrypoint = []string{entrypoint}
				}
			}
			return makeBundle(s, args[0], dir, platform, o)
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&remove, "remove", false, "undo an unpack: unmount DIR/rootfs and remove its snapshot and files")
	f.StringVar(&platform, "platform", "", "which manifest of a multi-platform image (default this host's)")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	f.StringVarP(&o.User, "user", "u", "", "user to run as: name, uid, name:group or uid:gid")
	f.StringVarP(&o.WorkingDir, "workdir", "w", "", "working directory inside the container")
	f.StringVar(&entrypoint, "entrypoint", "", "replace the image's entrypoint (and drop its Cmd)")
	f.StringVar(&o.Hostname, "hostname", "", "the container's host name")
	f.BoolVarP(&o.Terminal, "tty", "t", false, "give the process a terminal")
	f.BoolVar(&o.ReadOnly, "read-only", false, "mount the root file system read-only")
	f.BoolVar(&o.Privileged, "privileged", false, "all capabilities, no seccomp filter, no masked paths")
	f.StringSliceVar(&o.CapAdd, "cap-add", nil, "add capabilities")
	f.StringSliceVar(&o.CapDrop, "cap-drop", nil, "drop capabilities")
	return cmd
}

func makeBundle(s *image.Store, name, dir, platform string, o runspec.Options) (err error) {
	img, err := s.Get(name)
	if err != nil {
		return err
	}
	if _, err := s.Snapshots.Stat(bundleKey(dir)); err == nil {
		return fmt.Errorf("%s was unpacked before and not removed: berth image unpack --remove %s", dir, dir)
	}
	// A new or empty directory only: a failed unpack removes what is in
	// it, and --remove removes the bundle's files, which must never be a
	// user's own.
	created, err := emptyDir(dir)
	if err != nil {
		return err
	}
	res, err := s.Unpack(img.Target, platform)
	if err != nil {
		return cleanEmpty(dir, created, err)
	}
	m, _, err := s.Manifest(img.Target, platform)
	if err != nil {
		return cleanEmpty(dir, created, err)
	}
	cfg, err := s.Config(m)
	if err != nil {
		return cleanEmpty(dir, created, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return cleanEmpty(dir, created, err)
	}
	key := bundleKey(dir)
	mounts, err := s.Snapshots.Prepare(key, res.ChainID.String(), map[string]string{"berth.bundle": dir})
	if err != nil {
		return cleanEmpty(dir, created, err)
	}
	defer func() {
		if err != nil {
			if rerr := removeBundle(s, dir, created); rerr != nil {
				err = fmt.Errorf("%w (and undoing the unpack: %v)", err, rerr)
			}
		}
	}()
	if err = snapshot.MountAll(mounts, rootfs); err != nil {
		return err
	}
	o.Rootfs = "rootfs"
	o.RootfsDir = rootfs
	if o.Hostname == "" {
		// Docker names a container's host after its ID; a bundle's
		// after its directory.
		sum := sha256.Sum256([]byte(dir))
		o.Hostname = hex.EncodeToString(sum[:6])
	}
	spec, err := runspec.Generate(cfg, o)
	if err != nil {
		return err
	}
	for i, v := range runspec.Volumes(cfg) {
		if clean := path.Clean(v); !path.IsAbs(clean) || clean == "/" {
			return fmt.Errorf("image volume %q: a volume must be an absolute path other than /", v)
		}
		src := filepath.Join(dir, "volumes", strconv.Itoa(i))
		if err = newVolume(src, rootfs, v); err != nil {
			return fmt.Errorf("volume %s: %w", v, err)
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: v, Type: "bind", Source: src, Options: []string{"rbind", "rw"}})
	}
	if err = runspec.EtcFiles(spec, dir); err != nil {
		return err
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// emptyDir makes dir, or checks that it is an empty directory, and makes
// it private: the rootfs below it holds the image's setuid programs and
// device nodes, which no other user of the host may reach. It reports
// whether it made dir.
func emptyDir(dir string) (bool, error) {
	err := os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return false, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	if len(ents) > 0 {
		return false, fmt.Errorf("%s is not empty: unpack makes a bundle in a new or empty directory", dir)
	}
	return false, os.Chmod(dir, 0o700)
}

func cleanEmpty(dir string, created bool, err error) error {
	if created {
		os.Remove(dir)
	}
	return err
}

// newVolume makes a directory for an image's volume, holding what the
// image has at that path, as Docker fills a new volume.
func newVolume(dir, rootfs, path string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	root, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	// Resolved inside the rootfs: an image whose /var is a symlink to /
	// must not have the host's directories copied into its volume.
	src, err := inroot.Openat2(int(root.Fd()), path, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return os.Mkdir(dir, 0o755)
	}
	defer src.Close()
	// cp -a keeps owners, modes and times; it reads the directory
	// through the descriptor it inherits.
	cp := exec.Command("cp", "-a", "/proc/self/fd/3/.", dir)
	cp.ExtraFiles = []*os.File{src}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if out, err := cp.CombinedOutput(); err != nil {
		return fmt.Errorf("copy the image's %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeBundle undoes makeBundle: it unmounts the rootfs (refusing if it
// is in use), removes its snapshot, then what unpack wrote in dir, and dir
// itself if it is left empty (or if unpack made it).
func removeBundle(s *image.Store, dir string, created bool) error {
	if _, err := s.Snapshots.Stat(bundleKey(dir)); err != nil {
		return fmt.Errorf("%s is not a bundle berth image unpack made (or it was removed already): %w", dir, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := snapshot.Unmount(rootfs); err != nil {
		return err
	}
	if err := s.Snapshots.Remove(bundleKey(dir)); err != nil {
		return err
	}
	var errs []error
	for _, f := range bundleFiles {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "volumes")); err != nil {
		errs = append(errs, err)
	}
	// Empty once unmounted; Remove, not RemoveAll: should it not be,
	// what is there is not ours.
	if err := os.Remove(rootfs); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := os.Remove(dir); err != nil && created {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
