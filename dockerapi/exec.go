package dockerapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/engine"
	"github.com/moby/moby/api/types/container"
)

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	var req container.ExecCreateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	id, err := s.Engine.ExecCreate(r.PathValue("id"), engine.ExecConfig{
		Cmd: req.Cmd, Env: req.Env, User: req.User, WorkingDir: req.WorkingDir,
		Tty: req.Tty, Stdin: req.AttachStdin, Privileged: req.Privileged,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: id})
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	var req container.ExecStartRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil && err != io.EOF {
			writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
	}
	id := r.PathValue("id")
	x, err := s.Engine.ExecInspect(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Detach {
		if _, _, err := s.Engine.ExecStart(context.Background(), id, false); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	// The upgrade first: a process that cannot start is reported in the
	// stream and its exit code (126, 127), as Docker does, not as an
	// HTTP error the CLI cannot read.
	client, brw, err := hijack(w, x.Config.Tty)
	if err != nil {
		return
	}
	mon, mr, err := s.Engine.ExecStart(context.Background(), id, true)
	if err != nil {
		msg := []byte(errorMessage(err) + "\n")
		if x.Config.Tty {
			client.Write(msg)
		} else {
			frameWriter{client, 2}.Write(msg)
		}
		client.Close()
		return
	}
	if req.ConsoleSize != nil && x.Config.Tty {
		s.Engine.ExecResize(context.Background(), id, uint16(req.ConsoleSize[0]), uint16(req.ConsoleSize[1]))
	}
	splice(client, brw, mon, mr, x.Config.Stdin, func() {
		// The client asks for the exit code next: have it recorded.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Engine.ExecWait(ctx, id)
	})
}

func (s *Server) execResize(w http.ResponseWriter, r *http.Request) {
	h, errH := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wd, errW := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if errH != nil || errW != nil {
		writeError(w, http.StatusBadRequest, "resize needs h and w, the terminal's rows and columns")
		return
	}
	if err := s.Engine.ExecResize(r.Context(), r.PathValue("id"), uint16(h), uint16(wd)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	x, err := s.Engine.ExecInspect(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := container.ExecInspectResponse{
		ID: x.ID, Running: x.Running, ExitCode: x.ExitCode, ContainerID: x.ContainerID, Pid: x.Pid,
		OpenStdin: x.Config.Stdin, OpenStdout: true, OpenStderr: true, CanRemove: !x.Running && x.ExitCode != nil,
		ProcessConfig: &container.ExecProcessConfig{Tty: x.Config.Tty, User: x.Config.User},
	}
	if len(x.Config.Cmd) > 0 {
		resp.ProcessConfig.Entrypoint, resp.ProcessConfig.Arguments = x.Config.Cmd[0], x.Config.Cmd[1:]
	}
	writeJSON(w, http.StatusOK, resp)
}

// stats turns the engine's counters into Docker's shape.
func statsResponse(c engine.Container, st engine.Stats) container.StatsResponse {
	cg := st.Cgroup
	resp := container.StatsResponse{
		ID: c.ID, Name: "/" + c.Name, OSType: "linux", Read: st.Read,
		CPUStats: container.CPUStats{
			CPUUsage: container.CPUUsage{
				TotalUsage: cg.CPU.Usage.Total, PercpuUsage: cg.CPU.Usage.Percpu,
				UsageInKernelmode: cg.CPU.Usage.Kernel, UsageInUsermode: cg.CPU.Usage.User,
			},
			SystemUsage: st.SystemCPU, OnlineCPUs: uint32(st.OnlineCPUs),
			ThrottlingData: container.ThrottlingData{
				Periods: cg.CPU.Throttling.Periods, ThrottledPeriods: cg.CPU.Throttling.ThrottledPeriods,
				ThrottledTime: cg.CPU.Throttling.ThrottledTime,
			},
		},
		MemoryStats: container.MemoryStats{
			Usage: cg.Memory.Usage.Usage, MaxUsage: cg.Memory.Usage.Max, Limit: cg.Memory.Usage.Limit,
			Failcnt: cg.Memory.Usage.Failcnt, Stats: cg.Memory.Raw,
		},
		PidsStats: container.PidsStats{Current: cg.Pids.Current, Limit: cg.Pids.Limit},
	}
	for _, e := range cg.Blkio.IoServiceBytesRecursive {
		resp.BlkioStats.IoServiceBytesRecursive = append(resp.BlkioStats.IoServiceBytesRecursive,
			container.BlkioStatEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	for _, e := range cg.Blkio.IoServicedRecursive {
		resp.BlkioStats.IoServicedRecursive = append(resp.BlkioStats.IoServicedRecursive,
			container.BlkioStatEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value})
	}
	if len(st.Network) > 0 {
		resp.Networks = map[string]container.NetworkStats{}
		for name, n := range st.Network {
			resp.Networks[name] = container.NetworkStats{
				RxBytes: n.RxBytes, RxPackets: n.RxPackets, RxErrors: n.RxErrors, RxDropped: n.RxDropped,
				TxBytes: n.TxBytes, TxPackets: n.TxPackets, TxErrors: n.TxErrors, TxDropped: n.TxDropped,
			}
		}
	}
	return resp
}

func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	c, err := s.Engine.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stream := r.URL.Query().Get("stream") == "" || boolParam(r, "stream")
	oneShot := boolParam(r, "one-shot")
	w.Header().Set("Content-Type", "application/json")
	if c.State.Status != engine.Running {
		// Docker answers a stopped container with empty counters.
		writeJSON(w, http.StatusOK, container.StatsResponse{ID: c.ID, Name: "/" + c.Name, OSType: "linux"})
		return
	}
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	var prev *container.StatsResponse
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st, err := s.Engine.Stats(c.ID)
		if err != nil {
			if prev == nil {
				s.fail(w, r, err)
			}
			return
		}
		resp := statsResponse(c, st)
		if prev == nil && !stream && !oneShot {
			// A single sample still gets a previous one to compare,
			// for the CPU percentage, as Docker's does.
			p := resp
			prev = &p
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
			continue
		}
		if prev != nil {
			resp.PreRead, resp.PreCPUStats = prev.Read, prev.CPUStats
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
		if !stream {
			return
		}
		rc.Flush()
		prev = &resp
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}
