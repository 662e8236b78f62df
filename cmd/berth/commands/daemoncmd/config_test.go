package daemoncmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigInYAMLAndTOML(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "berth.yaml")
	os.WriteFile(yamlFile, []byte(`root: /srv/berth
defaultRuntime: runc
runtimes: {myrunc: [/usr/local/bin/runc, --debug]}
logMaxSize: 1048576
network: {bridge: br0, subnet: 10.50.0.0/16}
metricsAddr: 127.0.0.1:9323
registries:
  docker.io: {mirrors: ["http://127.0.0.1:5000"]}
`), 0o600)
	tomlFile := filepath.Join(dir, "berth.toml")
	os.WriteFile(tomlFile, []byte(`root = "/srv/berth"
default_runtime = "runc"
log_max_size = 1048576
metrics_addr = "127.0.0.1:9323"
[runtimes]
myrunc = ["/usr/local/bin/runc", "--debug"]
[network]
bridge = "br0"
subnet = "10.50.0.0/16"
[registries."docker.io"]
mirrors = ["http://127.0.0.1:5000"]
`), 0o600)
	for _, f := range []string{yamlFile, tomlFile} {
		c, err := loadConfig(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Root != "/srv/berth" || c.DefaultRuntime != "runc" || c.LogMaxSize != 1<<20 || c.MetricsAddr != "127.0.0.1:9323" ||
			len(c.Runtimes["myrunc"]) != 2 || c.Network.Bridge != "br0" || c.Network.Subnet != "10.50.0.0/16" ||
			len(c.Registries["docker.io"].Mirrors) != 1 {
			t.Errorf("%s: %+v", filepath.Base(f), c)
		}
	}
	// A misspelt key is named, not ignored.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("defaultRuntme: runc\n"), 0o600)
	if _, err := loadConfig(bad); err == nil || !strings.Contains(err.Error(), "defaultRuntme") {
		t.Errorf("unknown key: %v", err)
	}
	badTOML := filepath.Join(dir, "bad.toml")
	os.WriteFile(badTOML, []byte("default_runtme = \"runc\"\n"), 0o600)
	if _, err := loadConfig(badTOML); err == nil {
		t.Errorf("unknown TOML key taken")
	}
}
