package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"syscall"
	"time"

	"github.com/berth-dev/berth/engine/shim"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's health check defaults.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	healthLogKept         = 5
	healthOutputMax       = 4096
)

// imageHealthcheck reads the HEALTHCHECK of an image's config, which the
// OCI config type does not carry.
func (e *Engine) imageHealthcheck(m ocispec.Manifest) *Healthcheck {
	b, err := e.Images.Content.ReadBlob(m.Config.Digest, 8<<20)
	if err != nil {
		return nil
	}
	var img dockerspec.DockerOCIImage
	if json.Unmarshal(b, &img) != nil || img.Config.Healthcheck == nil {
		return nil
	}
	h := img.Config.Healthcheck
	return &Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
}

// mergeHealthcheck lays a run's health flags over the image's
// HEALTHCHECK, as docker run's --health-* flags do.
func mergeHealthcheck(run, img *Healthcheck) *Healthcheck {
	if run == nil {
		return img
	}
	if img == nil {
		return run
	}
	out := *run
	if len(out.Test) == 0 {
		out.Test = img.Test
	}
	if out.Interval == 0 {
		out.Interval = img.Interval
	}
	if out.Timeout == 0 {
		out.Timeout = img.Timeout
	}
	if out.StartPeriod == 0 {
		out.StartPeriod = img.StartPeriod
	}
	if out.Retries == 0 {
		out.Retries = img.Retries
	}
	return &out
}

// healthConfig is the check a container runs, or nil.
func (e *Engine) healthConfig(rec Container) *Healthcheck {
	h := rec.Spec.Healthcheck
	if h == nil || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil
	}
	out := *h
	if out.Interval == 0 {
		out.Interval = defaultHealthInterval
	}
	if out.Timeout == 0 {
		out.Timeout = defaultHealthTimeout
	}
	if out.Retries == 0 {
		out.Retries = defaultHealthRetries
	}
	return &out
}

// monitorHealth runs a running container's health check until the run
// ends, recording each probe and the verdict.
func (e *Engine) monitorHealth(c *container) {
	rec := c.snapshot()
	h := e.healthConfig(rec)
	if h == nil {
		return
	}
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		started := rec.State.StartedAt
		t := time.NewTicker(h.Interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-exited:
				return
			case <-e.ctx.Done():
				return
			}
			probe := e.probe(rec.ID, h)
			var changed string
			e.update(c, func(r *Container) {
				if r.State.Status != Running || r.State.Health == nil {
					return
				}
				hs := r.State.Health
				before := hs.Status
				hs.Log = append(hs.Log, probe)
				if len(hs.Log) > healthLogKept {
					hs.Log = hs.Log[len(hs.Log)-healthLogKept:]
				}
				switch {
				case probe.ExitCode == 0:
					hs.Status, hs.FailingStreak = "healthy", 0
				case probe.Start.Sub(started) < h.StartPeriod:
					// Failures in the start period do not count.
				default:
					hs.FailingStreak++
					if hs.FailingStreak >= h.Retries {
						hs.Status = "unhealthy"
					}
				}
				if hs.Status != before {
					changed = hs.Status
				}
			})
			if changed != "" {
				e.Events.publish(Event{Type: "container", Action: "health_status: " + changed, ID: rec.ID, Attributes: map[string]string{"name": rec.Name}})
			}
		}
	}()
}

// probe runs the check once in the container.
func (e *Engine) probe(id string, h *Healthcheck) HealthProbe {
	p := HealthProbe{Start: time.Now().UTC(), ExitCode: -1}
	cmd := h.Test[1:]
	if h.Test[0] == "CMD-SHELL" {
		cmd = []string{"/bin/sh", "-c", h.Test[1]}
	}
	ctx, cancel := context.WithTimeout(e.ctx, h.Timeout)
	defer cancel()
	finish := func(code int, out string) HealthProbe {
		p.End, p.ExitCode, p.Output = time.Now().UTC(), code, out
		return p
	}
	xid, err := e.ExecCreate(id, ExecConfig{Cmd: cmd})
	if err != nil {
		return finish(-1, err.Error())
	}
	defer e.forgetExec(xid)
	conn, r, err := e.ExecStart(ctx, xid, true)
	if err != nil {
		return finish(-1, err.Error())
	}
	defer conn.Close()
	var out limitedBuffer
	done := make(chan struct{})
	go func() {
		stdcopy.StdCopy(&out, &out, r)
		close(done)
	}()
	code, err := e.ExecWait(ctx, xid)
	if err != nil {
		shim.Client{Dir: e.execDir(xid)}.Kill(context.Background(), syscall.SIGKILL, false)
		conn.Close()
		return finish(-1, "Health check exceeded timeout ("+h.Timeout.String()+")")
	}
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return finish(code, out.String())
}

// limitedBuffer keeps the first healthOutputMax bytes written.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := healthOutputMax - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var _ io.Writer = (*limitedBuffer)(nil)
