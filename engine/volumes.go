package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Volume is a local volume: a directory under <root>/volumes/<name>/_data
// that outlives the containers that mount it.
type Volume struct {
	Name       string            `json:"name"`
	Mountpoint string            `json:"mountpoint"`
	Created    time.Time         `json:"created"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Anonymous volumes (a -v with no name, an image's VOLUME) belong to
	// one container, and go with it on rm -v.
	Anonymous bool   `json:"anonymous,omitempty"`
	Owner     string `json:"owner,omitempty"`
}

// ErrVolumeNotFound: no such volume.
var ErrVolumeNotFound = errors.New("no such volume")

type volumes struct {
	dir string
	mu  sync.Mutex
}

func (v *volumes) path(name string) string { return filepath.Join(v.dir, name) }

func (v *volumes) get(name string) (Volume, error) {
	b, err := os.ReadFile(filepath.Join(v.path(name), "volume.json"))
	if errors.Is(err, os.ErrNotExist) || !validName.MatchString(name) {
		return Volume{}, fmt.Errorf("%w: %s", ErrVolumeNotFound, name)
	}
	if err != nil {
		return Volume{}, err
	}
	var vol Volume
	return vol, json.Unmarshal(b, &vol)
}

// create makes a volume; made is false if it existed.
func (v *volumes) create(name string, labels map[string]string, owner string) (vol Volume, made bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if vol, err := v.get(name); err == nil {
		return vol, false, nil
	}
	vol = Volume{Name: name, Mountpoint: filepath.Join(v.path(name), "_data"), Created: time.Now().UTC(), Labels: labels, Anonymous: owner != "", Owner: owner}
	if err := os.MkdirAll(vol.Mountpoint, 0o755); err != nil {
		return vol, false, err
	}
	b, _ := json.MarshalIndent(vol, "", "\t")
	if err := os.WriteFile(filepath.Join(v.path(name), "volume.json"), b, 0o600); err != nil {
		os.RemoveAll(v.path(name))
		return vol, false, err
	}
	return vol, true, nil
}

// withImageVolumes adds an anonymous volume for each of the image's
// VOLUMEs that no mount of the spec covers.
func withImageVolumes(mounts []Mount, imageVolumes []string) []Mount {
	out := append([]Mount{}, mounts...)
	for _, dst := range imageVolumes {
		covered := false
		for _, m := range mounts {
			if path.Clean(m.Destination) == path.Clean(dst) {
				covered = true
			}
		}
		if !covered {
			out = append(out, Mount{Type: "volume", Destination: dst})
		}
	}
	return out
}

// prepare makes the volumes a new container's mounts name (Docker
// creates named volumes on first use) and names its anonymous ones. It
// returns the volumes it made, for a failed create to remove.
func (v *volumes) prepare(mounts []Mount, owner string) ([]string, error) {
	var made []string
	for i := range mounts {
		m := &mounts[i]
		if m.Type != "volume" {
			continue
		}
		anon := ""
		if m.Source == "" {
			m.Source = newID()
			anon = owner
		}
		_, isNew, err := v.create(m.Source, nil, anon)
		if err != nil {
			v.removeAll(made)
			return nil, fmt.Errorf("volume %s: %w", m.Source, err)
		}
		if isNew {
			made = append(made, m.Source)
		}
	}
	return made, nil
}

func (v *volumes) removeAll(names []string) {
	for _, n := range names {
		os.RemoveAll(v.path(n))
	}
}

// CreateVolume makes a named volume (or returns the one there is).
func (e *Engine) CreateVolume(name string, labels map[string]string) (Volume, error) {
	if name == "" {
		name = newID()
	}
	if !validName.MatchString(name) {
		return Volume{}, invalid{fmt.Errorf("invalid volume name %q: [a-zA-Z0-9][a-zA-Z0-9_.-]*", name)}
	}
	vol, made, err := e.volumes.create(name, labels, "")
	if err == nil && made {
		e.Events.publish(Event{Type: "volume", Action: "create", ID: name})
	}
	return vol, err
}

// Volumes lists the volumes.
func (e *Engine) Volumes() ([]Volume, error) {
	ents, err := os.ReadDir(e.volumes.dir)
	if err != nil {
		return nil, err
	}
	var out []Volume
	for _, ent := range ents {
		if vol, err := e.volumes.get(ent.Name()); err == nil {
			out = append(out, vol)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Volume returns one volume.
func (e *Engine) Volume(name string) (Volume, error) { return e.volumes.get(name) }

// VolumeUsers names the containers that mount a volume.
func (e *Engine) VolumeUsers(name string) []string {
	var users []string
	for _, c := range e.List() {
		for _, m := range c.Spec.Mounts {
			if m.Type == "volume" && m.Source == name {
				users = append(users, c.ID)
			}
		}
	}
	return users
}

// RemoveVolume removes a volume no container mounts (force: even then,
// as docker volume rm -f does not; it only ignores a missing volume).
func (e *Engine) RemoveVolume(name string, force bool) error {
	if _, err := e.volumes.get(name); err != nil {
		if force && errors.Is(err, ErrVolumeNotFound) {
			return nil
		}
		return err
	}
	if users := e.VolumeUsers(name); len(users) > 0 {
		short := make([]string, len(users))
		for i, u := range users {
			short[i] = u[:12]
		}
		return fmt.Errorf("%w: remove %s: volume is in use - [%s]", ErrConflict, name, strings.Join(short, ", "))
	}
	e.volumes.mu.Lock()
	defer e.volumes.mu.Unlock()
	if err := os.RemoveAll(e.volumes.path(name)); err != nil {
		return err
	}
	e.Events.publish(Event{Type: "volume", Action: "destroy", ID: name})
	return nil
}

// volumeSource is the host directory of a volume mount.
func (e *Engine) volumeSource(name string) (string, error) {
	vol, err := e.volumes.get(name)
	if err != nil {
		return "", err
	}
	return vol.Mountpoint, nil
}
