package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseNamesTheFieldOfATypeError(t *testing.T) {
	cases := map[string]string{
		`{"ociVersion":"1.0.0","process":{"user":{"uid":"root"}}}`: "process.user.uid",
		`{"ociVersion":1}`:                                "ociVersion",
		`{"linux":{"namespaces":[{"type":7}]}}`:           "linux.namespaces.type",
		`{"mounts":{"destination":"/x"}}`:                 "mounts",
		`{"process":{"args":"sh"}}`:                       "process.args",
		"{\n\"ociVersion\": \"1.0.0\",\n\"root\": {,}\n}": "line 3",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %s", in, err, want)
		}
	}
}

func TestUnknownPropertiesAreIgnored(t *testing.T) {
	s, err := Parse([]byte(`{"ociVersion":"1.0.2","someExtension":{"x":1},"process":{"args":["sh"],"cwd":"/","future":true}}`))
	if err != nil || s.Process.Args[0] != "sh" {
		t.Fatalf("%v %+v", err, s)
	}
}

func TestVersionsAccepted(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", specs.Version, "1.0.0-rc5+build"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "2.0.0", "0.9.0", "1.99.0", "one", "1.0", "v1.0.0", "01.0.0", "1.0.0.0"} {
		if err := CheckVersion(v); err == nil {
			t.Errorf("%s accepted", v)
		}
	}
}

func valid() *specs.Spec {
	s := Default()
	s.Root.Path = "/"
	return s
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		edit  func(s *specs.Spec)
		field string
	}{
		{func(s *specs.Spec) { s.Process.Cwd = "rel" }, "process.cwd"},
		{func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../../../../etc/x", Limit: 1}}}
		}, "linux.resources.hugepageLimits[0].pageSize"},
		{func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Unified: map[string]string{"../cgroup.procs": "1"}}
		}, "linux.resources.unified[../cgroup.procs]"},
		{func(s *specs.Spec) { s.Process.Args = nil }, "process.args"},
		{func(s *specs.Spec) { s.Process.Env = []string{"NOEQUALS"} }, "process.env[0]"},
		{func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		}, "process.rlimits[0]"},
		{func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_CORE"}, {Type: "RLIMIT_CORE"}}
		}, "process.rlimits[1].type"},
		{func(s *specs.Spec) { a := 5000; s.Process.OOMScoreAdj = &a }, "process.oomScoreAdj"},
		{func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid"})
		}, "linux.namespaces[6].type"},
		{func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "time", Path: "rel/path"})
		}, "linux.namespaces[6].path"},
		{func(s *specs.Spec) { s.Linux.UIDMappings = []specs.LinuxIDMapping{{Size: 1}} }, "linux.uidMappings"},
		{func(s *specs.Spec) { s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {}} }, "linux.timeOffsets"},
		{func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "q"}} }, "linux.devices[0].type"},
		{func(s *specs.Spec) { s.Linux.MaskedPaths = []string{"proc/kcore"} }, "linux.maskedPaths[0]"},
		{func(s *specs.Spec) { s.Mounts[2].Destination = "relative" }, "mounts[2]"},
		{func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "hook"}}} }, "hooks.poststop[0].path"},
		{func(s *specs.Spec) {
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Type: "x"}}
		}, "linux.resources.devices[0]"},
		{func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "WINDOWS"} }, "linux.personality.domain"},
		{func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"fs.file-max": "1"} }, "linux.sysctl[fs.file-max]"},
		{func(s *specs.Spec) { s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "nope"} }, "linux.seccomp.defaultAction"},
		{func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_MAX"} }, "process.ioPriority.class"},
		{func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_WHENEVER"} }, "process.scheduler.policy"},
	}
	for _, c := range cases {
		s := valid()
		c.edit(s)
		_, err := Validate(s)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("got %v, want an error naming %s", err, c.field)
		}
	}
	if _, err := Validate(valid()); err != nil {
		t.Fatalf("the default spec is invalid: %v", err)
	}
}

func TestLoadMakesRootAbsoluteAndChecksIt(t *testing.T) {
	dir := t.TempDir()
	s := Default()
	data, _ := json.Marshal(s)
	os.WriteFile(filepath.Join(dir, Name), data, 0o644)
	if _, _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "root.path") {
		t.Fatalf("missing rootfs: %v", err)
	}
	os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	got, _, _, err := Load(dir)
	if err != nil || got.Root.Path != filepath.Join(dir, "rootfs") {
		t.Fatalf("%v %v", err, got.Root.Path)
	}
}

// The parser and validator take untrusted input (any bundle's config.json):
// they must fail cleanly, never panic.
func FuzzParseAndValidate(f *testing.F) {
	good, _ := json.Marshal(valid())
	f.Add(good)
	f.Add([]byte(`{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]}}`))
	f.Add([]byte(`{"linux":{"sysctl":{"net.x":"1"},"namespaces":[{"type":"network","path":"/proc/1/ns/net"}],"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":9,"op":"SCMP_CMP_EQ"}]}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		_, _ = Validate(s)
	})
}
