package dockerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/registry/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.Engine.Images.List()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// One entry per image ID, with every name that points at it.
	byID := map[string]*imagetypes.Summary{}
	var order []string
	for _, img := range imgs {
		id := img.ID.String()
		sum, ok := byID[id]
		if !ok {
			sum = &imagetypes.Summary{ID: id, Containers: -1, SharedSize: -1, RepoTags: []string{}, RepoDigests: []string{}, Labels: map[string]string{}}
			if d, err := s.Engine.Images.Describe(img); err == nil {
				sum.Size, sum.Created = d.Size, d.Created.Unix()
				if d.Config != nil && d.Config.Config.Labels != nil {
					sum.Labels = d.Config.Config.Labels
				}
			}
			byID[id] = sum
			order = append(order, id)
		}
		name := image.FamiliarName(img.Name)
		if strings.Contains(name, "@") {
			sum.RepoDigests = append(sum.RepoDigests, name)
		} else {
			sum.RepoTags = append(sum.RepoTags, name)
			repo, _, _ := strings.Cut(name, ":")
			if i := strings.LastIndex(name, ":"); i > 0 && !strings.Contains(name[i:], "/") {
				repo = name[:i]
			}
			sum.RepoDigests = append(sum.RepoDigests, repo+"@"+img.Target.Digest.String())
		}
	}
	out := make([]imagetypes.Summary, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) imageInspectOrRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if r.Method == http.MethodDelete {
		s.imageRemove(w, r, name)
		return
	}
	name, ok := strings.CutSuffix(name, "/json")
	if !ok {
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	img, err := s.Engine.Images.Get(name)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %s", engine.ErrImageNotFound, name))
		return
	}
	d, err := s.Engine.Images.Describe(img)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := imagetypes.InspectResponse{
		ID: img.ID.String(), RepoTags: []string{}, RepoDigests: []string{}, Size: d.Size,
		Created: d.Created.Format(time.RFC3339Nano), Descriptor: &img.Target,
		RootFS: imagetypes.RootFS{Type: "layers"},
	}
	all, _ := s.Engine.Images.List()
	for _, other := range all {
		if other.ID == img.ID {
			resp.RepoTags = append(resp.RepoTags, image.FamiliarName(other.Name))
		}
	}
	if c := d.Config; c != nil {
		resp.Architecture, resp.Os, resp.Variant, resp.Author = c.Architecture, c.OS, c.Variant, c.Author
		resp.Config = &dockerspec.DockerOCIImageConfig{ImageConfig: c.Config}
		for _, l := range c.RootFS.DiffIDs {
			resp.RootFS.Layers = append(resp.RootFS.Layers, l.String())
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) imageRemove(w http.ResponseWriter, r *http.Request, name string) {
	img, err := s.Engine.Images.Get(name)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %s", engine.ErrImageNotFound, name))
		return
	}
	if !boolParam(r, "force") {
		for _, c := range s.Engine.List() {
			if c.ImageID == img.ID {
				writeError(w, http.StatusConflict, fmt.Sprintf("conflict: unable to remove image %s: container %s is using its referenced image %s", name, c.ID[:12], img.ID.Encoded()[:12]))
				return
			}
		}
	}
	// A name untags that name; an ID removes every name of the image.
	byID := strings.HasPrefix(img.ID.String(), name) || strings.HasPrefix(img.ID.Encoded(), name)
	removed, err := s.Engine.Images.Remove(name, byID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []imagetypes.DeleteResponse{}
	for _, n := range removed {
		out = append(out, imagetypes.DeleteResponse{Untagged: image.FamiliarName(n)})
	}
	s.Engine.Events.Publish(engine.Event{Type: "image", Action: "delete", ID: img.ID.String(), Attributes: map[string]string{"name": name}})
	writeJSON(w, http.StatusOK, out)
}

// jsonProgress reports a pull as Docker's JSON-lines stream.
type jsonProgress struct {
	mu  sync.Mutex
	enc *json.Encoder
	rc  *http.ResponseController
}

func (p *jsonProgress) send(m jsonstream.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enc.Encode(m)
	p.rc.Flush()
}

func shortDigest(d ocispec.Descriptor) string {
	e := d.Digest.Encoded()
	return e[:min(12, len(e))]
}

func (p *jsonProgress) Start(d ocispec.Descriptor, offset int64) {
	if !image.IsLayer(d.MediaType) {
		return
	}
	p.send(jsonstream.Message{Status: "Pulling fs layer", ID: shortDigest(d)})
}

func (p *jsonProgress) Add(d ocispec.Descriptor, n int64) {
	if !image.IsLayer(d.MediaType) {
		return
	}
	p.send(jsonstream.Message{Status: "Downloading", ID: shortDigest(d), Progress: &jsonstream.Progress{Current: n, Total: d.Size}})
}

func (p *jsonProgress) Done(d ocispec.Descriptor, err error) {
	if !image.IsLayer(d.MediaType) || err != nil {
		return
	}
	p.send(jsonstream.Message{Status: "Download complete", ID: shortDigest(d)})
}

func (p *jsonProgress) Unpacking(d ocispec.Descriptor, done bool, err error) {
	if err != nil {
		return
	}
	if done {
		p.send(jsonstream.Message{Status: "Pull complete", ID: shortDigest(d)})
	} else {
		p.send(jsonstream.Message{Status: "Extracting", ID: shortDigest(d)})
	}
}

func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from := q.Get("fromImage")
	if from == "" {
		writeError(w, http.StatusBadRequest, "fromImage is required (importing with fromSrc is not supported)")
		return
	}
	name := from
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			name += "@" + tag
		} else {
			name += ":" + tag
		}
	}
	if s.Registry == nil {
		writeError(w, http.StatusInternalServerError, "this daemon has no registry client")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	p := &jsonProgress{enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
	p.send(jsonstream.Message{Status: "Pulling from " + image.FamiliarName(from), ID: q.Get("tag")})
	res, err := s.Registry.Pull(r.Context(), s.Engine.Images, name, client.PullOptions{Platform: q.Get("platform"), Progress: p})
	if err != nil {
		// Errors come inside the 200 stream, as the CLI expects.
		p.mu.Lock()
		p.enc.Encode(struct {
			jsonstream.Message
			Error string `json:"error"`
		}{jsonstream.Message{Error: &jsonstream.Error{Message: err.Error()}}, err.Error()})
		p.mu.Unlock()
		return
	}
	p.send(jsonstream.Message{Status: "Digest: " + res.Target.Digest.String()})
	if res.Fetched == 0 {
		p.send(jsonstream.Message{Status: "Status: Image is up to date for " + image.FamiliarName(res.Name)})
	} else {
		p.send(jsonstream.Message{Status: "Status: Downloaded newer image for " + image.FamiliarName(res.Name)})
	}
	s.Engine.Events.Publish(engine.Event{Type: "image", Action: "pull", ID: image.FamiliarName(res.Name), Attributes: map[string]string{"name": res.Name}})
}

func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) {
	names, err := s.Engine.Images.Load(r.Body)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %v", errInvalid, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	for _, n := range names {
		enc.Encode(jsonstream.Message{Stream: "Loaded image: " + image.FamiliarName(n) + "\n"})
		s.Engine.Events.Publish(engine.Event{Type: "image", Action: "load", ID: n})
	}
}

// events streams the engine's events as Docker's messages.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := parseTime(q.Get("since"))
	var until time.Time
	if err == nil {
		until, err = parseTime(q.Get("until"))
	}
	filters, ferr := parseFilters(q.Get("filters"))
	if err == nil {
		err = ferr
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	past, ch, cancel := s.Engine.Events.Subscribe(since)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	send := func(ev engine.Event) bool {
		if !until.IsZero() && ev.Time.After(until) {
			return false
		}
		if !eventMatches(ev, filters) {
			return true
		}
		attrs := map[string]string{}
		for k, v := range ev.Attributes {
			attrs[k] = v
		}
		m := events.Message{
			Type: events.Type(ev.Type), Action: events.Action(ev.Action),
			Actor: events.Actor{ID: ev.ID, Attributes: attrs}, Scope: "local",
			Time: ev.Time.Unix(), TimeNano: ev.Time.UnixNano(),
		}
		if enc.Encode(m) != nil {
			return false
		}
		rc.Flush()
		return true
	}
	for _, ev := range past {
		if !send(ev) {
			return
		}
	}
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok || !send(ev) {
				return
			}
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func eventMatches(ev engine.Event, f map[string][]string) bool {
	match := func(k string, got ...string) bool {
		vs, ok := f[k]
		if !ok {
			return true
		}
		for _, v := range vs {
			for _, g := range got {
				if g != "" && (v == g || (k == "container" && strings.HasPrefix(g, v))) {
					return true
				}
			}
		}
		return false
	}
	if _, ok := f["container"]; ok && ev.Type != "container" {
		return false
	}
	return match("type", ev.Type) && match("event", ev.Action, strings.SplitN(ev.Action, ":", 2)[0]) &&
		match("container", ev.ID, ev.Attributes["name"]) && match("image", ev.Attributes["image"], ev.ID)
}
