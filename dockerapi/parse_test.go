package dockerapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestBindsAreHostPathsOrVolumes(t *testing.T) {
	for _, tc := range []struct {
		in, typ, src, dst string
		ro                bool
		err               string
	}{
		{in: "/srv:/data", typ: "bind", src: "/srv", dst: "/data"},
		{in: "/srv:/data:ro", typ: "bind", src: "/srv", dst: "/data", ro: true},
		{in: "cache:/var/cache", typ: "volume", src: "cache", dst: "/var/cache"},
		{in: "/anon", typ: "volume", dst: "/anon"},
		{in: "/srv:/data:rw,z", typ: "bind", src: "/srv", dst: "/data"},
		{in: "/srv:/data:exec", err: `unknown option "exec"`},
		{in: ":/data", err: "empty source"},
		{in: "a:b:c:d", err: "SOURCE:DESTINATION"},
	} {
		m, err := parseBind(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.Type != tc.typ || m.Source != tc.src || m.Destination != tc.dst || m.ReadOnly != tc.ro {
			t.Errorf("%q: %+v, %v", tc.in, m, err)
		}
	}
}

func TestCreateRequestBecomesASpec(t *testing.T) {
	body := `{"Image":"busybox","Cmd":["sh"],"Entrypoint":[""],"Tty":true,
		"HostConfig":{"NetworkMode":"default","AutoRemove":true,"Memory":67108864,"NanoCpus":500000000,
		"PidsLimit":10,"RestartPolicy":{"Name":"no"},"Binds":["/srv:/data:ro"],"Tmpfs":{"/run":"size=1m,ro"},
		"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostPort":"5353"}]}}}`
	var req container.CreateRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	sp, err := specOf(req)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Network != "" || !sp.AutoRemove || sp.Restart.Name != "" || sp.Entrypoint == nil || len(sp.Entrypoint) != 0 {
		t.Errorf("network %q, autoremove %v, restart %q, entrypoint %#v", sp.Network, sp.AutoRemove, sp.Restart.Name, sp.Entrypoint)
	}
	if sp.Resources.Memory != 64<<20 || sp.Resources.NanoCPUs != 5e8 || sp.Resources.PidsLimit != 10 {
		t.Errorf("resources %+v", sp.Resources)
	}
	if len(sp.Ports) != 2 || len(sp.Mounts) != 2 {
		t.Fatalf("ports %+v, mounts %+v", sp.Ports, sp.Mounts)
	}
	for _, p := range sp.Ports {
		ok := (p.ContainerPort == 80 && p.HostPort == 8080 && p.HostIP == "127.0.0.1" && p.Protocol == "tcp") ||
			(p.ContainerPort == 53 && p.HostPort == 5353 && p.HostIP == "" && p.Protocol == "udp")
		if !ok {
			t.Errorf("port %+v", p)
		}
	}
	req.HostConfig.NetworkMode = "container:other"
	if _, err := specOf(req); err == nil {
		t.Errorf("network mode container: was taken")
	}
}

func TestFiltersInBothShapes(t *testing.T) {
	for _, raw := range []string{`{"name":{"web":true}}`, `{"name":["web"]}`} {
		f, err := parseFilters(raw)
		if err != nil || len(f["name"]) != 1 || f["name"][0] != "web" {
			t.Errorf("%s: %v %v", raw, f, err)
		}
	}
	if _, err := parseFilters(`{"name":`); err == nil {
		t.Errorf("broken filters were taken")
	}
}

// FuzzCreateRequest: any body the API decodes is turned into a spec or
// refused, never a panic.
func FuzzCreateRequest(f *testing.F) {
	f.Add(`{"Image":"x","HostConfig":{"Binds":["a:b:c"],"PortBindings":{"1/tcp":[{"HostPort":"99999"}]}}}`)
	f.Add(`{"Image":"x","HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1}}],"CpuQuota":5,"CpuPeriod":0}}`)
	f.Add(`{"Image":"x","Healthcheck":{"Test":["CMD"]},"HostConfig":{"Tmpfs":{"/x":"ro,,size"}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req container.CreateRequest
		if json.Unmarshal([]byte(body), &req) != nil || req.Config == nil {
			return
		}
		specOf(req)
	})
}
