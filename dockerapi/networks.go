package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/berth-dev/berth/engine"
	enginenet "github.com/berth-dev/berth/engine/network"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// The networks Docker has beside its bridges: shown, never stored.
var predefined = []string{"host", "none"}

func (s *Server) networks() (*enginenet.Manager, error) {
	if n := s.Engine.Networks(); n != nil {
		return n, nil
	}
	return nil, errors.New("this daemon has networking turned off")
}

func (s *Server) networkSummary(n enginenet.Network, withContainers bool) network.Inspect {
	out := network.Inspect{Network: network.Network{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver, EnableIPv4: true,
		Internal: n.Internal, Labels: n.Labels, Options: map[string]string{"com.docker.network.bridge.name": n.Bridge},
		IPAM: network.IPAM{Driver: "host-local"},
	}}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if p, err := netip.ParsePrefix(n.Subnet); err == nil {
		cfg := network.IPAMConfig{Subnet: p}
		cfg.Gateway, _ = netip.ParseAddr(n.Gateway)
		out.IPAM.Config = []network.IPAMConfig{cfg}
	}
	if withContainers {
		out.Containers = map[string]network.EndpointResource{}
		for _, c := range s.Engine.List() {
			a := c.State.Net
			if a == nil || a.Network != n.Name {
				continue
			}
			ep := network.EndpointResource{Name: c.Name, EndpointID: a.Interface}
			ep.IPv4Address, _ = netip.ParsePrefix(fmt.Sprintf("%s/%d", a.IP, a.PrefixLen))
			if mac, err := net.ParseMAC(a.MAC); err == nil {
				ep.MacAddress = network.HardwareAddr(mac)
			}
			out.Containers[c.ID] = ep
		}
	}
	return out
}

func predefinedNetwork(name string) network.Inspect {
	return network.Inspect{Network: network.Network{Name: name, ID: name, Scope: "local", Driver: name, Labels: map[string]string{}, Options: map[string]string{}}}
}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) {
	m, err := s.networks()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ns, err := m.List()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []network.Inspect{}
	for _, n := range ns {
		out = append(out, s.networkSummary(n, false))
	}
	for _, p := range predefined {
		out = append(out, predefinedNetwork(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) {
	m, err := s.networks()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req network.CreateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if req.Driver != "" && req.Driver != "bridge" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("network driver %q is not supported: only bridge", req.Driver))
		return
	}
	o := enginenet.CreateOptions{Labels: req.Labels, Internal: req.Internal}
	if req.IPAM != nil && len(req.IPAM.Config) > 0 {
		c := req.IPAM.Config[0]
		if c.Subnet.IsValid() {
			o.Subnet = c.Subnet.String()
		}
		if c.Gateway.IsValid() {
			o.Gateway = c.Gateway.String()
		}
	}
	n, err := m.Create(req.Name, o)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, enginenet.ErrExists) {
			code = http.StatusConflict
		}
		writeError(w, code, strings.TrimPrefix(err.Error(), enginenet.ErrExists.Error()+": "))
		return
	}
	s.Engine.Events.Publish(engine.Event{Type: "network", Action: "create", ID: n.ID, Attributes: map[string]string{"name": n.Name, "type": "bridge"}})
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID})
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, p := range predefined {
		if id == p {
			writeJSON(w, http.StatusOK, predefinedNetwork(p))
			return
		}
	}
	m, err := s.networks()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := m.Get(id)
	if err != nil {
		writeError(w, http.StatusNotFound, "network "+id+" not found")
		return
	}
	writeJSON(w, http.StatusOK, s.networkSummary(n, true))
}

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) {
	m, err := s.networks()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	n, err := m.Get(id)
	if err != nil {
		writeError(w, http.StatusNotFound, "network "+id+" not found")
		return
	}
	err = m.Remove(n.Name, func(name string) bool {
		for _, c := range s.Engine.List() {
			if c.Spec.Network == name {
				return true
			}
		}
		return false
	})
	if err != nil {
		code := http.StatusForbidden
		if errors.Is(err, enginenet.ErrInUse) {
			code = http.StatusConflict
		}
		writeError(w, code, err.Error())
		return
	}
	s.Engine.Events.Publish(engine.Event{Type: "network", Action: "destroy", ID: n.ID, Attributes: map[string]string{"name": n.Name, "type": "bridge"}})
	w.WriteHeader(http.StatusNoContent)
}

func volumeOf(v engine.Volume, refs int) volume.Volume {
	out := volume.Volume{
		Name: v.Name, Driver: "local", Mountpoint: v.Mountpoint, Scope: "local",
		CreatedAt: v.Created.Format(time.RFC3339), Labels: v.Labels, Options: map[string]string{},
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if v.Anonymous {
		out.Labels["com.docker.volume.anonymous"] = ""
	}
	if refs >= 0 {
		out.UsageData = &volume.UsageData{RefCount: int64(refs), Size: -1}
	}
	return out
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Engine.Volumes()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range vs {
		out.Volumes = append(out.Volumes, volumeOf(v, -1))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) {
	var req volume.CreateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if req.Driver != "" && req.Driver != "local" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("volume driver %q is not supported: only local", req.Driver))
		return
	}
	if len(req.DriverOpts) > 0 {
		writeError(w, http.StatusBadRequest, "volume driver options are not supported")
		return
	}
	v, err := s.Engine.CreateVolume(req.Name, req.Labels)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, volumeOf(v, -1))
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) {
	v, err := s.Engine.Volume(r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeOf(v, len(s.Engine.VolumeUsers(v.Name))))
}

func (s *Server) volumeRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.Engine.RemoveVolume(r.PathValue("name"), boolParam(r, "force")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
