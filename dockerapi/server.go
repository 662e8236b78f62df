// Package dockerapi serves the Docker Engine API over Berth's engine: the
// subset the docker CLI (and Berth's own CLI, through moby's client) needs
// to run, list, inspect, log, exec, stop and remove containers, and to pull
// and list images. Shapes are moby's API types; the wire behaviour follows
// what the docker CLI is seen to depend on (../shared/CLIENTS.md): the
// Api-Version header on /_ping, 101 upgrades for attach and exec, wait
// headers flushed at once, pull errors inside a 200 stream.
package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/registry/client"
	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/system"
)

// APIVersion is the Engine API version served: docker CLI 28's.
const APIVersion = "1.50"

// MinAPIVersion is the oldest version a client may ask for.
const MinAPIVersion = "1.40"

// Server answers the Engine API.
type Server struct {
	Engine *engine.Engine
	// Registry pulls images (images/create, and nothing else here).
	Registry *client.Client
	Log      *slog.Logger
	// Info is what /info reports of the daemon.
	Info system.Info

	mux *http.ServeMux
}

var versionPrefix = regexp.MustCompile(`^/v(\d+\.\d+)(/.*)$`)

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.mux = http.NewServeMux()
	s.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
			if versionLess(m[1], MinAPIVersion) || versionLess(APIVersion, m[1]) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is not supported: this daemon serves API %s to %s", m[1], MinAPIVersion, APIVersion))
				return
			}
			r.URL.Path = m[2]
			r.URL.RawPath = ""
		}
		w.Header().Set("Api-Version", APIVersion)
		w.Header().Set("Ostype", "linux")
		w.Header().Set("Server", "Berth/"+version.Version+" (linux)")
		s.mux.ServeHTTP(w, r)
	})
}

func versionLess(a, b string) bool {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	for i := range 2 {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return false
}

func (s *Server) routes() {
	m := s.mux
	ping := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		w.Header().Set("Docker-Experimental", "false")
		w.Header().Set("Swarm", "inactive")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "0")
			return
		}
		w.Write([]byte("OK"))
	}
	m.HandleFunc("GET /_ping", ping)
	m.HandleFunc("HEAD /_ping", ping)
	m.HandleFunc("GET /version", s.version)
	m.HandleFunc("GET /info", s.info)
	m.HandleFunc("GET /events", s.events)

	m.HandleFunc("POST /containers/create", s.containerCreate)
	m.HandleFunc("GET /containers/json", s.containerList)
	m.HandleFunc("GET /containers/{id}/json", s.containerInspect)
	m.HandleFunc("POST /containers/{id}/start", s.containerStart)
	m.HandleFunc("POST /containers/{id}/stop", s.containerStop)
	m.HandleFunc("POST /containers/{id}/restart", s.containerRestart)
	m.HandleFunc("POST /containers/{id}/kill", s.containerKill)
	m.HandleFunc("POST /containers/{id}/wait", s.containerWait)
	m.HandleFunc("DELETE /containers/{id}", s.containerRemove)
	m.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	m.HandleFunc("POST /containers/{id}/attach", s.containerAttach)
	m.HandleFunc("POST /containers/{id}/resize", s.containerResize)
	m.HandleFunc("GET /containers/{id}/top", s.containerTop)
	m.HandleFunc("GET /containers/{id}/stats", s.containerStats)
	m.HandleFunc("HEAD /containers/{id}/archive", s.archiveStat)
	m.HandleFunc("GET /containers/{id}/archive", s.archiveGet)
	m.HandleFunc("PUT /containers/{id}/archive", s.archivePut)
	m.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	m.HandleFunc("POST /exec/{id}/start", s.execStart)
	m.HandleFunc("POST /exec/{id}/resize", s.execResize)
	m.HandleFunc("GET /exec/{id}/json", s.execInspect)

	m.HandleFunc("GET /images/json", s.imageList)
	m.HandleFunc("POST /images/create", s.imageCreate)
	m.HandleFunc("GET /images/{name...}", s.imageInspectOrRemove)
	m.HandleFunc("DELETE /images/{name...}", s.imageInspectOrRemove)
	m.HandleFunc("POST /images/load", s.imageLoad)

	m.HandleFunc("GET /networks", s.networkList)
	m.HandleFunc("POST /networks/create", s.networkCreate)
	m.HandleFunc("GET /networks/{id}", s.networkInspect)
	m.HandleFunc("DELETE /networks/{id}", s.networkRemove)
	m.HandleFunc("GET /volumes", s.volumeList)
	m.HandleFunc("POST /volumes/create", s.volumeCreate)
	m.HandleFunc("GET /volumes/{name}", s.volumeInspect)
	m.HandleFunc("DELETE /volumes/{name}", s.volumeRemove)
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	kernel := s.Info.KernelVersion
	writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      struct{ Name string }{Name: "Berth"},
		Version:       version.Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		GitCommit:     version.Commit(),
		GoVersion:     runtime.Version(),
		Os:            "linux",
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
		Components: []system.ComponentVersion{{
			Name: "Engine", Version: version.Version,
			Details: map[string]string{"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": "linux", "Arch": runtime.GOARCH},
		}},
	})
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	info := s.Info
	cs := s.Engine.List()
	info.Containers = len(cs)
	info.ContainersRunning, info.ContainersStopped, info.ContainersPaused = 0, 0, 0
	for _, c := range cs {
		if c.State.Status == engine.Running {
			info.ContainersRunning++
		} else {
			info.ContainersStopped++
		}
	}
	if imgs, err := s.Engine.Images.List(); err == nil {
		info.Images = len(imgs)
	}
	writeJSON(w, http.StatusOK, info)
}

// writeJSON answers with v.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, common.ErrorResponse{Message: msg})
}

// fail answers with err, its status chosen by what it is: the docker CLI
// tells not-found (404) and conflicts (409) apart by status alone.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		s.Log.Warn("api", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, errorMessage(err))
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, engine.ErrExecNotFound),
		errors.Is(err, engine.ErrImageNotFound), errors.Is(err, image.ErrNotFound),
		errors.Is(err, errNotFound), errors.Is(err, engine.ErrVolumeNotFound), errors.Is(err, engine.ErrPathNotFound):
		return http.StatusNotFound
	case errors.Is(err, engine.ErrConflict), errors.Is(err, engine.ErrNotRunning), errors.Is(err, errConflict):
		return http.StatusConflict
	case errors.Is(err, engine.ErrInvalid), errors.Is(err, errInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// errorMessage says err as Docker does where clients match on it.
func errorMessage(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return "No such container: " + strings.TrimPrefix(msg, engine.ErrNotFound.Error()+": ")
	case errors.Is(err, engine.ErrImageNotFound):
		return "No such image: " + strings.TrimPrefix(msg, engine.ErrImageNotFound.Error()+": ")
	case errors.Is(err, engine.ErrExecNotFound):
		return "No such exec instance: " + strings.TrimPrefix(msg, engine.ErrExecNotFound.Error()+": ")
	}
	for _, prefix := range []string{engine.ErrConflict.Error() + ": ", engine.ErrInvalid.Error() + ": "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return msg
}

var (
	errNotFound = errors.New("not found")
	errConflict = errors.New("conflict")
	errInvalid  = errors.New("invalid argument")
)

// boolParam reads Docker's boolean query values: 1, true, True.
func boolParam(r *http.Request, k string) bool {
	v := r.URL.Query().Get(k)
	b, err := strconv.ParseBool(v)
	return err == nil && b
}
