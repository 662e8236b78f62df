// Package registrycmd is `berth registry`: Berth's OCI registry server.
package registrycmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berth-dev/berth/registry/server"
	"github.com/spf13/cobra"
)

// New returns the registry command tree; root is Berth's state directory
// (the registry keeps its own store under it unless told otherwise).
func New(root *string, log func() *slog.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run an OCI registry (the distribution spec's server side)",
	}
	var addr, dir, htpasswd, cert, key string
	var maxUploads int
	var maxBlob int64
	var realm, service, issuer, bundle string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve a registry: pull, push, mount, tags, referrers, deletion",
		Long: `Serve the OCI Distribution Spec 1.1 on --addr, storing blobs by digest and the
registry's records under --root (default: <berth --root>/registry).

  berth registry serve --addr 127.0.0.1:5000
  berth registry serve --addr :5443 --tls-cert cert.pem --tls-key key.pem --htpasswd users

With --htpasswd (bcrypt entries, htpasswd -B) every request needs Basic
credentials. With --token-realm, --token-service, --token-issuer and
--token-rootcertbundle it needs Bearer tokens (JWTs) from that token service,
as distribution's token auth does: signed by one of the bundle's
certificates, for the service, granting the request's actions on the
repository. It stops cleanly on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = filepath.Join(*root, "registry")
			}
			o := server.Options{Logger: log(), MaxUploads: maxUploads, MaxBlobSize: maxBlob}
			if htpasswd != "" {
				auth, err := server.Htpasswd(htpasswd)
				if err != nil {
					return fmt.Errorf("--htpasswd: %w", err)
				}
				o.Auth = auth
			}
			if realm != "" || service != "" || issuer != "" || bundle != "" {
				if htpasswd != "" {
					return errors.New("--htpasswd and token auth (--token-*) exclude each other")
				}
				t, err := server.LoadTokenAuth(realm, service, issuer, bundle)
				if err != nil {
					return fmt.Errorf("token auth: %w", err)
				}
				o.Token = t
			}
			if (cert == "") != (key == "") {
				return errors.New("--tls-cert and --tls-key go together")
			}
			reg, err := server.New(dir, o)
			if err != nil {
				return err
			}
			defer reg.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			// No overall read timeout: a layer upload may take long; idle
			// keep-alive connections and slow headers are cut.
			srv := &http.Server{Handler: reg, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				srv.Shutdown(shut)
			}()
			scheme := "http"
			if cert != "" {
				scheme = "https"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "registry on %s://%s, storing in %s\n", scheme, ln.Addr(), dir)
			if cert != "" {
				err = srv.ServeTLS(ln, cert, key)
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		},
	}
	f := serve.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:5000", "address to listen on")
	f.StringVar(&dir, "root", "", "directory of the registry's storage (default <berth --root>/registry)")
	f.StringVar(&htpasswd, "htpasswd", "", "require Basic auth with the users of this htpasswd file (bcrypt)")
	f.StringVar(&realm, "token-realm", "", "token auth: the URL clients get tokens from")
	f.StringVar(&service, "token-service", "", "token auth: the service (audience) tokens must be for")
	f.StringVar(&issuer, "token-issuer", "", "token auth: the issuer tokens must come from")
	f.StringVar(&bundle, "token-rootcertbundle", "", "token auth: PEM certificates whose keys sign the tokens")
	f.StringVar(&cert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&key, "tls-key", "", "and this private key (PEM)")
	f.IntVar(&maxUploads, "max-uploads", server.DefaultMaxUploads, "upload sessions open at once; more get 429 TOOMANYREQUESTS")
	f.Int64Var(&maxBlob, "max-blob-size", server.DefaultMaxBlobSize, "largest blob an upload may make, in bytes")
	cmd.AddCommand(serve)
	var gcRoot string
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Free the disk of blobs and manifests nothing links any more (registry stopped)",
		Long: `Deleting a blob or manifest through the API only unlinks it from its
repository; gc removes what no repository links from the registry's store.
It refuses to run while the registry serves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if gcRoot == "" {
				gcRoot = filepath.Join(*root, "registry")
			}
			res, err := server.GC(gcRoot)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blobs, %d bytes\n", res.Blobs, res.Bytes)
			return nil
		},
	}
	gc.Flags().StringVar(&gcRoot, "root", "", "directory of the registry's storage (default <berth --root>/registry)")
	cmd.AddCommand(gc)
	return cmd
}
