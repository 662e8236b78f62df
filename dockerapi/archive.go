package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/berth-dev/berth/engine"
	"github.com/moby/moby/api/types/container"
)

// pathStatHeader is how docker cp learns what a path is.
func pathStatHeader(w http.ResponseWriter, st engine.PathStat) {
	b, _ := json.Marshal(container.PathStat{Name: st.Name, Size: st.Size, Mode: st.Mode, Mtime: st.Mtime, LinkTarget: st.LinkTarget})
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
}

func archivePath(w http.ResponseWriter, r *http.Request) (string, bool) {
	p := r.URL.Query().Get("path")
	if p == "" {
		writeError(w, http.StatusBadRequest, "path is required")
		return "", false
	}
	return p, true
}

func (s *Server) archiveStat(w http.ResponseWriter, r *http.Request) {
	p, ok := archivePath(w, r)
	if !ok {
		return
	}
	st, err := s.Engine.StatPath(r.PathValue("id"), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pathStatHeader(w, st)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) archiveGet(w http.ResponseWriter, r *http.Request) {
	p, ok := archivePath(w, r)
	if !ok {
		return
	}
	started := false
	err := s.Engine.ArchivePath(r.PathValue("id"), p, w, func(st engine.PathStat) {
		pathStatHeader(w, st)
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		started = true
	})
	if err != nil && !started {
		s.fail(w, r, err)
	}
}

func (s *Server) archivePut(w http.ResponseWriter, r *http.Request) {
	p, ok := archivePath(w, r)
	if !ok {
		return
	}
	if err := s.Engine.ExtractArchive(r.Context(), r.PathValue("id"), p, r.Body); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
