package imagecmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berth-dev/berth/registry/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// LoginCmd is `berth login`: credentials checked against the registry and
// kept in Docker's config.json, where docker and Berth both read them.
func LoginCmd() *cobra.Command {
	var user, pass string
	var passStdin, insecure bool
	var registries string
	cmd := &cobra.Command{
		Use:   "login [REGISTRY]",
		Short: "Log in to a registry (Docker Hub if none is given)",
		Long: `Check a user name and password against a registry and keep them in Docker's
config.json ($DOCKER_CONFIG or ~/.docker), where berth pull and push (and
docker) find them. The password is read from --password-stdin or asked for on
the terminal.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := client.RegistryOf(strings.Join(args, ""))
			if user == "" {
				return errors.New("--username is required")
			}
			switch {
			case passStdin:
				b, err := io.ReadAll(bufio.NewReader(cmd.InOrStdin()))
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			case pass != "":
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING! --password on the command line is visible to other users; use --password-stdin.")
			default:
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return errors.New("no terminal to ask for the password on: use --password-stdin")
				}
				fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
				b, err := term.ReadPassword(int(os.Stdin.Fd()))
				fmt.Fprintln(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				pass = string(b)
			}
			c, err := newClient(insecure, registries)
			if err != nil {
				return err
			}
			if err := c.Login(cmd.Context(), registry, user, pass); err != nil {
				return err
			}
			if err := client.SaveDockerConfigAuth("", registry, user, pass); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP and TLS certificates that do not verify")
	cmd.Flags().StringVar(&registries, "registries", EnvOr("BERTH_REGISTRIES", ""), "YAML file of per-registry settings (env BERTH_REGISTRIES; default "+client.DefaultHostsFile+")")
	return cmd
}

// LogoutCmd is `berth logout`.
func LogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [REGISTRY]",
		Short: "Forget a registry's credentials",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := client.RegistryOf(strings.Join(args, ""))
			if err := client.SaveDockerConfigAuth("", registry, "", ""); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Removing login credentials for", registry)
			return nil
		},
	}
}
