// Package enginecmd is the docker-like CLI over `berth daemon`: run, ps,
// logs, exec and the rest, speaking the Engine API through moby's client.
package enginecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// DefaultHost is where the CLI finds the daemon unless -H or BERTH_HOST
// says otherwise.
const DefaultHost = "unix:///run/berth/berth.sock"

// Globals are the flags every engine command shares.
type Globals struct {
	Host string
}

// StatusError ends the CLI with Code, printing Err if there is one:
// docker's exit codes (125 the daemon failed, 126 the command could not
// be invoked, 127 it was not found, else the container's own).
type StatusError struct {
	Err  error
	Code int
}

func (e StatusError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e StatusError) Unwrap() error   { return e.Err }
func (e StatusError) ExitStatus() int { return e.Code }

func (g *Globals) host() string {
	if g.Host != "" {
		return g.Host
	}
	if h := os.Getenv("BERTH_HOST"); h != "" {
		return h
	}
	return DefaultHost
}

// client connects to the daemon.
func (g *Globals) client() (*client.Client, error) {
	return client.New(client.WithHost(g.host()), client.WithAPIVersionNegotiation(), client.WithUserAgent("berth-cli"))
}

// Reachable tells whether a daemon answers at the CLI's host, for the
// commands (pull) that work on the store directly when none runs.
func (g *Globals) Reachable(ctx context.Context) bool {
	h := g.host()
	if path, ok := strings.CutPrefix(h, "unix://"); ok {
		if _, err := os.Stat(path); err != nil {
			return false
		}
	}
	c, err := g.client()
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Ping(ctx, client.PingOptions{})
	return err == nil
}

// explain turns a connection failure into the one line a user needs.
func (g *Globals) explain(err error) error {
	if err == nil {
		return nil
	}
	var se StatusError
	if errors.As(err, &se) {
		return err
	}
	var ne *net.OpError
	if client.IsErrConnectionFailed(err) || errors.As(err, &ne) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot connect to the Berth daemon at %s: is `berth daemon` running?", g.host())
	}
	return err
}

// withClient makes a RunE that connects first and explains failures.
func (g *Globals) withClient(run func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		defer c.Close()
		return g.explain(run(cmd, args, c))
	}
}

// output prints rows as a table (the default), through a Go template
// (--format), or as JSON or YAML (-o json|yaml, or --format json).
type output struct {
	format string
	kind   string
}

func (o *output) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.format, "format", "", "format with a Go template (e.g. '{{.ID}} {{.Names}}'), or 'json'")
	cmd.Flags().StringVarP(&o.kind, "output", "o", "", "print as json or yaml instead of a table")
}

func (o *output) print(w io.Writer, headers []string, rows [][]string, objects []any, templateData []any) error {
	kind := o.kind
	if o.format == "json" || o.format == "{{json .}}" {
		kind = "jsonlines"
	}
	switch kind {
	case "json":
		b, err := json.MarshalIndent(objects, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
		return nil
	case "jsonlines":
		for _, obj := range objects {
			b, _ := json.Marshal(obj)
			fmt.Fprintln(w, string(b))
		}
		return nil
	case "yaml":
		b, err := yaml.Marshal(objects)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "":
	default:
		return fmt.Errorf("-o %s: json or yaml", kind)
	}
	if o.format != "" {
		format := strings.TrimPrefix(o.format, "table ")
		t, err := template.New("format").Funcs(templateFuncs).Parse(format + "\n")
		if err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		for _, d := range templateData {
			if err := t.Execute(w, d); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

var templateFuncs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// printJSON prints inspect-style output: an indented JSON array, or each
// object through --format.
func printJSON(w io.Writer, format string, objects []any) error {
	if format != "" {
		t, err := template.New("format").Funcs(templateFuncs).Parse(format + "\n")
		if err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		for _, obj := range objects {
			// Templates see the object as its JSON fields, as docker's do.
			var m any
			b, _ := json.Marshal(obj)
			json.Unmarshal(b, &m)
			if err := t.Execute(w, m); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
		}
		return nil
	}
	b, err := json.MarshalIndent(objects, "", "    ")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, string(b))
	return nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return humanDuration(time.Since(t)) + " ago"
}

func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case s < 3600:
		if m := s / 60; m > 1 {
			return fmt.Sprintf("%d minutes", m)
		}
		return "About a minute"
	case s < 48*3600:
		if h := s / 3600; h > 1 {
			return fmt.Sprintf("%d hours", h)
		}
		return "About an hour"
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func humanSize(n float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f%s", n, units[i])
	}
	return fmt.Sprintf("%.3g%s", n, units[i])
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.2f%s", n, units[i])
}
