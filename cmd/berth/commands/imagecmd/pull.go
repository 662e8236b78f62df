package imagecmd

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/registry/client"
	units "github.com/docker/go-units"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// PullCmd is `berth pull` (also `berth image pull`).
func PullCmd(g *Globals) *cobra.Command {
	var platform, registries string
	var insecure, quiet, noUnpack bool
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "Pull an image from a registry",
		Long: `Pull an image as docker pull does: the manifest for this host's platform (or
--platform) from the index, then config and layers in parallel, each verified
by digest and resumed after a broken connection; then unpack it. What the
store has already is not fetched again.

Credentials come from Docker's config.json (docker login, or berth login).
Registries on loopback may use plain HTTP; others need --insecure for that.
Mirrors and per-registry settings come from --registries (YAML; by default
/etc/berth/registries.yaml if it exists), as containerd's hosts.toml:

  docker.io:
    mirrors: ["http://127.0.0.1:5000"]
  registry.k8s.io:
    mirrors: ["http://127.0.0.1:5000"]
  registry.example.com:
    ca: /etc/berth/certs/example-ca.pem   # a self-signed registry
    cert: /etc/berth/certs/client.pem     # client certificate, if asked
    key: /etc/berth/certs/client-key.pem
  old.example.com:
    insecure: true                        # plain HTTP or any certificate`,
		Args: cobra.ExactArgs(1),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			c, err := newClient(insecure, registries)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var p *progress
			if !quiet {
				p = newProgress(out)
			}
			o := client.PullOptions{Platform: platform, NoUnpack: noUnpack}
			if p != nil {
				o.Progress = p
				defer p.stop()
			}
			res, err := c.Pull(cmd.Context(), s, args[0], o)
			if p != nil {
				p.stop()
			}
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(out, "Digest: %s\n", res.Target.Digest)
				if res.Fetched == 0 {
					fmt.Fprintf(out, "Status: Image is up to date for %s\n", image.FamiliarName(res.Name))
				} else {
					fmt.Fprintf(out, "Status: Downloaded newer image for %s\n", image.FamiliarName(res.Name))
				}
			}
			fmt.Fprintln(out, image.FamiliarName(res.Name))
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&platform, "platform", "", "platform to pull from a multi-platform image (os/arch[/variant])")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP and TLS certificates that do not verify")
	f.StringVar(&registries, "registries", EnvOr("BERTH_REGISTRIES", ""), "YAML file of per-registry settings: mirrors, ca, cert/key, insecure (env BERTH_REGISTRIES; default "+client.DefaultHostsFile+")")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the image's name")
	f.BoolVar(&noUnpack, "no-unpack", false, "store the layers without unpacking them")
	return cmd
}

// newClient is a registry client with Docker's credentials, the
// --insecure flag and the per-registry settings of a --registries file
// (by default /etc/berth/registries.yaml, if it exists).
func newClient(insecure bool, registries string) (*client.Client, error) {
	c := client.New()
	c.Insecure = insecure
	c.Credentials = client.DockerConfigCredentials("")
	hosts, err := client.LoadHosts(registries)
	if err != nil {
		return nil, err
	}
	c.Hosts = hosts
	return c, nil
}

// EnvOr is the environment variable k, or def if it is unset or empty:
// the default of a flag that an environment variable can set.
func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// progress shows downloads as docker does: one line per blob, redrawn in
// place on a terminal; elsewhere one line when each starts and ends.
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	blobs map[string]*blobState
	order []string
	drawn int
	done  chan struct{}
	once  sync.Once
}

type blobState struct {
	size, have int64
	status     string
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, blobs: map[string]*blobState{}, done: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.done:
					return
				case <-t.C:
					p.draw()
				}
			}
		}()
	}
	return p
}

func short(d ocispec.Descriptor) string { return shortID(d.Digest.String()) }

func (p *progress) Start(d ocispec.Descriptor, offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := short(d)
	if _, ok := p.blobs[id]; !ok {
		p.order = append(p.order, id)
	}
	p.blobs[id] = &blobState{size: d.Size, have: offset, status: "Downloading"}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: Downloading %s\n", id, units.HumanSize(float64(d.Size)))
	}
}

func (p *progress) Add(d ocispec.Descriptor, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.blobs[short(d)]; b != nil {
		b.have += n
	}
}

func (p *progress) Done(d ocispec.Descriptor, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.blobs[short(d)]
	if b == nil {
		return
	}
	b.status = "Download complete"
	if err != nil {
		b.status = "Failed: " + err.Error()
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", short(d), b.status)
	}
}

// Unpacking hears of a layer being extracted, as docker's "Extracting"
// and "Pull complete".
func (p *progress) Unpacking(d ocispec.Descriptor, done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := short(d)
	b := p.blobs[id]
	if b == nil {
		p.order = append(p.order, id)
		b = &blobState{size: d.Size, have: d.Size}
		p.blobs[id] = b
	}
	switch {
	case err != nil:
		b.status = "Failed: " + err.Error()
	case done:
		b.status = "Pull complete"
	default:
		b.status = "Extracting"
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", id, b.status)
	}
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sb strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", p.drawn)
	}
	ids := append([]string(nil), p.order...)
	for _, id := range ids {
		b := p.blobs[id]
		line := id + ": " + b.status
		if b.status == "Downloading" && b.size > 0 {
			const width = 40
			n := int(float64(width) * float64(b.have) / float64(b.size))
			n = min(max(n, 0), width)
			bar := strings.Repeat("=", n)
			if n < width {
				bar += ">" + strings.Repeat(" ", width-n-1)
			}
			line += fmt.Sprintf(" [%s] %s/%s", bar, units.HumanSize(float64(b.have)), units.HumanSize(float64(b.size)))
		}
		sb.WriteString("\x1b[2K" + line + "\n")
	}
	p.drawn = len(ids)
	io.WriteString(p.w, sb.String())
}

func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		if p.tty {
			p.draw()
		}
	})
}

// PushCmd is `berth push` (also `berth image push`).
func PushCmd(g *Globals) *cobra.Command {
	var insecure, quiet bool
	var registries string
	cmd := &cobra.Command{
		Use:   "push NAME [DESTINATION]",
		Short: "Push an image to a registry",
		Long: `Push an image to the registry its name says, or to DESTINATION: the blobs the
repository lacks (mounted from elsewhere in the registry where it has them,
uploaded in one request or, when large, in chunks), then its manifests.

  berth image tag busybox 127.0.0.1:5000/lib/busybox:1 && berth push 127.0.0.1:5000/lib/busybox:1
  berth push busybox 127.0.0.1:5000/lib/busybox:1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: g.withStore(func(cmd *cobra.Command, args []string, s *image.Store) error {
			c, err := newClient(insecure, registries)
			if err != nil {
				return err
			}
			dst := ""
			if len(args) == 2 {
				dst = args[1]
			}
			out := cmd.OutOrStdout()
			o := client.PushOptions{}
			var p *progress
			if !quiet {
				p = newProgress(out)
				o.Progress = p
				defer p.stop()
			}
			res, err := c.Push(cmd.Context(), s, args[0], dst, o)
			if p != nil {
				p.stop()
			}
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(out, "Pushed: %d uploaded, %d mounted, %d already there; digest: %s\n", res.Pushed, res.Mounted, res.Skipped, res.Target.Digest)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP and TLS certificates that do not verify")
	f.StringVar(&registries, "registries", EnvOr("BERTH_REGISTRIES", ""), "YAML file of per-registry settings (env BERTH_REGISTRIES; default "+client.DefaultHostsFile+")")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	return cmd
}
