// Package network attaches containers to networks through CNI (libcni and
// the standard plugins: bridge, host-local, portmap, firewall, loopback), as
// containerd's CRI plugin and podman do. A network is Berth's record (name,
// subnet, bridge) from which the plugin chain's configuration is made; each
// running container on one has a network namespace bind-mounted at
// <run>/netns/<container ID>, which its runtime spec joins.
//
// Everything an attachment makes (veth, IP lease, iptables rules, the netns
// file) is undone by Detach with the same arguments; Reconcile undoes the
// attachments of containers that are no longer running, after a crash.
package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Network is a network's record.
type Network struct {
	Name    string            `json:"name"`
	ID      string            `json:"id"`
	Driver  string            `json:"driver"` // bridge
	Subnet  string            `json:"subnet"`
	Gateway string            `json:"gateway"`
	Bridge  string            `json:"bridge"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Internal networks have no route out (no masquerade).
	Internal bool `json:"internal,omitempty"`
}

// PortMapping publishes a container port on the host (portmap plugin).
type PortMapping struct {
	HostIP        string `json:"hostIP,omitempty"`
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// Attachment is where an attached container is on its network.
type Attachment struct {
	Network   string
	NetworkID string
	Netns     string
	Interface string
	IP        net.IP
	PrefixLen int
	Gateway   net.IP
	MAC       string
}

// Config places a manager.
type Config struct {
	// Root keeps the network records (<root>/networks).
	Root string
	// RunDir keeps the netns files, IP leases and CNI's cache.
	RunDir string
	// PluginDirs are searched for the CNI plugins.
	PluginDirs []string
	// DefaultBridge and DefaultSubnet shape the default network,
	// "bridge" (berth0, 10.87.0.0/16).
	DefaultBridge string
	DefaultSubnet string
}

// DefaultName is the network of containers that name none.
const DefaultName = "bridge"

// Manager keeps networks and attaches containers to them.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig
	mu  sync.Mutex
	// firewall: the host's FORWARD policy drops, so each container's
	// traffic needs the firewall plugin's accept rules.
	firewall bool
	masq     map[string]bool // networks whose rules are in place

	portsMu sync.Mutex
	ports   map[string]string // "proto/ip/port" published -> container ID
}

// ErrPortTaken: a published host port is taken.
var ErrPortTaken = errors.New("port is already allocated")

// ErrExists: a network of that name exists.
var ErrExists = errors.New("network exists")

// ErrNotFound: no such network.
var ErrNotFound = errors.New("network not found")

// ErrInUse: the network has containers.
var ErrInUse = errors.New("network in use")

// DefaultPluginDirs are where distributions install the CNI plugins.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"}

// Open opens a manager, making the default network if it is missing.
func Open(cfg Config) (*Manager, error) {
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = "berth0"
	}
	if cfg.DefaultSubnet == "" {
		cfg.DefaultSubnet = "10.87.0.0/16"
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = DefaultPluginDirs
	}
	for _, d := range []string{filepath.Join(cfg.Root, "networks"), filepath.Join(cfg.RunDir, "netns"), filepath.Join(cfg.RunDir, "cni")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	m := &Manager{cfg: cfg, cni: libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(cfg.RunDir, "cni", "cache"), nil), masq: map[string]bool{}, ports: map[string]string{}}
	if out, err := exec.Command("iptables", "-w", "-S", "FORWARD").Output(); err == nil {
		m.firewall = strings.Contains(string(out), "-P FORWARD DROP")
	}
	if _, err := m.Get(DefaultName); errors.Is(err, ErrNotFound) {
		if _, err := m.create(Network{Name: DefaultName, Subnet: cfg.DefaultSubnet, Bridge: cfg.DefaultBridge}); err != nil {
			return nil, fmt.Errorf("default network: %w", err)
		}
	}
	return m, nil
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CreateOptions shape a new network.
type CreateOptions struct {
	Subnet   string // empty: the next free 10.88.N.0/24
	Gateway  string // empty: the subnet's first address
	Labels   map[string]string
	Internal bool
}

// Create makes a network.
func (m *Manager) Create(name string, o CreateOptions) (Network, error) {
	if !validName.MatchString(name) || len(name) > 64 {
		return Network{}, fmt.Errorf("invalid network name %q: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64 characters", name)
	}
	switch name {
	case "none", "host", "default":
		return Network{}, fmt.Errorf("%q is a predefined network mode and cannot be created", name)
	}
	return m.create(Network{Name: name, Subnet: o.Subnet, Gateway: o.Gateway, Labels: o.Labels, Internal: o.Internal})
}

func (m *Manager) create(n Network) (Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.list()
	if err != nil {
		return Network{}, err
	}
	for _, o := range all {
		if o.Name == n.Name {
			return Network{}, fmt.Errorf("%w: network with name %s already exists", ErrExists, n.Name)
		}
	}
	if n.Subnet == "" {
		n.Subnet, err = freeSubnet(all)
		if err != nil {
			return Network{}, err
		}
	}
	_, subnet, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return Network{}, fmt.Errorf("invalid subnet %q: %v", n.Subnet, err)
	}
	if subnet.IP.To4() == nil {
		return Network{}, fmt.Errorf("subnet %s: only IPv4 subnets are supported", n.Subnet)
	}
	if ones, _ := subnet.Mask.Size(); ones > 30 {
		return Network{}, fmt.Errorf("subnet %s is too small for containers (at most /30)", n.Subnet)
	}
	n.Subnet = subnet.String()
	for _, o := range all {
		_, os, err := net.ParseCIDR(o.Subnet)
		if err == nil && (os.Contains(subnet.IP) || subnet.Contains(os.IP)) {
			return Network{}, fmt.Errorf("subnet %s overlaps with network %s (%s)", n.Subnet, o.Name, o.Subnet)
		}
	}
	if r := hostRouteOverlapping(subnet, n.Bridge); r != "" {
		return Network{}, fmt.Errorf("subnet %s overlaps with the host's route to %s: choose another (--subnet)", n.Subnet, r)
	}
	if n.Gateway == "" {
		gw := append(net.IP{}, subnet.IP.To4()...)
		gw[3]++
		n.Gateway = gw.String()
	} else if ip := net.ParseIP(n.Gateway); ip == nil || !subnet.Contains(ip) {
		return Network{}, fmt.Errorf("gateway %q is not an address in %s", n.Gateway, n.Subnet)
	}
	b := make([]byte, 32)
	rand.Read(b)
	n.ID = hex.EncodeToString(b)
	if n.Bridge == "" {
		n.Bridge = "br-" + n.ID[:12]
	}
	n.Driver = "bridge"
	n.Created = time.Now().UTC()
	return n, m.save(n)
}

// freeSubnet is the first 10.90.N.0/24 that no network has and no route
// of the host's reaches (podman's networks are 10.88 and 10.89).
func freeSubnet(all []Network) (string, error) {
	for i := 0; i < 256; i++ {
		cand := fmt.Sprintf("10.90.%d.0/24", i)
		_, c, _ := net.ParseCIDR(cand)
		free := hostRouteOverlapping(c, "") == ""
		for _, o := range all {
			if _, os, err := net.ParseCIDR(o.Subnet); err == nil && (os.Contains(c.IP) || c.Contains(os.IP)) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return "", errors.New("no free subnet in 10.90.0.0/16: give one with --subnet")
}

// hostRouteOverlapping names a route of the host's (other than through
// bridge, the network's own) that overlaps subnet, or is "".
func hostRouteOverlapping(subnet *net.IPNet, bridge string) string {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return ""
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			continue // the default route overlaps everything
		}
		if bridge != "" {
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().Name == bridge {
				continue
			}
		}
		if r.Dst.Contains(subnet.IP) || subnet.Contains(r.Dst.IP) {
			return r.Dst.String()
		}
	}
	return ""
}

func (m *Manager) file(name string) string {
	return filepath.Join(m.cfg.Root, "networks", name+".json")
}

func (m *Manager) save(n Network) error {
	b, err := json.MarshalIndent(n, "", "\t")
	if err != nil {
		return err
	}
	tmp := m.file(n.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.file(n.Name))
}

func (m *Manager) list() ([]Network, error) {
	ents, err := os.ReadDir(filepath.Join(m.cfg.Root, "networks"))
	if err != nil {
		return nil, err
	}
	var out []Network
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.cfg.Root, "networks", e.Name()))
		if err != nil {
			return nil, err
		}
		var n Network
		if err := json.Unmarshal(b, &n); err != nil {
			return nil, fmt.Errorf("network record %s: %w", e.Name(), err)
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// List returns every network.
func (m *Manager) List() ([]Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list()
}

// Get finds a network by name, ID or ID prefix.
func (m *Manager) Get(ref string) (Network, error) {
	all, err := m.List()
	if err != nil {
		return Network{}, err
	}
	for _, n := range all {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	for _, n := range all {
		if len(ref) >= 3 && len(ref) < len(n.ID) && n.ID[:len(ref)] == ref {
			return n, nil
		}
	}
	return Network{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// Remove deletes a network; inUse says whether containers use it (the
// engine knows). The default network stays.
func (m *Manager) Remove(ref string, inUse func(name string) bool) error {
	n, err := m.Get(ref)
	if err != nil {
		return err
	}
	if n.Name == DefaultName {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name)
	}
	if inUse(n.Name) {
		return fmt.Errorf("%w: network %s has containers: remove them first", ErrInUse, n.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.Remove(m.file(n.Name)); err != nil {
		return err
	}
	m.removeRules(n)
	// The bridge goes with its network (the plugin leaves it).
	if link, err := net.InterfaceByName(n.Bridge); err == nil {
		deleteLink(link.Name)
	}
	os.RemoveAll(filepath.Join(m.cfg.RunDir, "cni", "ipam", "berth-"+n.Name))
	return nil
}

// confList is the CNI plugin chain of a network.
func (m *Manager) confList(n Network) (*libcni.NetworkConfigList, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "berth-" + n.Name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": n.Bridge, "isGateway": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": n.Subnet, "gateway": n.Gateway}}},
					"dataDir": filepath.Join(m.cfg.RunDir, "cni", "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	if m.firewall {
		conf["plugins"] = append(conf["plugins"].([]any), map[string]any{"type": "firewall", "backend": "iptables"})
	}
	if !n.Internal {
		// An internal network has no way out: no default route.
		bridgePlugin := conf["plugins"].([]any)[0].(map[string]any)
		bridgePlugin["ipam"].(map[string]any)["routes"] = []map[string]string{{"dst": "0.0.0.0/0"}}
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(b)
}

// NetnsPath is where a container's network namespace is bind-mounted.
func (m *Manager) NetnsPath(containerID string) string { return m.netnsPath(containerID) }

func (m *Manager) netnsPath(containerID string) string {
	return filepath.Join(m.cfg.RunDir, "netns", containerID)
}

func runtimeConf(containerID, netns string, ports []PortMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: netns, IfName: "eth0"}
	if len(ports) > 0 {
		pm := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			e := map[string]any{"hostPort": int(p.HostPort), "containerPort": int(p.ContainerPort), "protocol": p.Protocol}
			if p.HostIP != "" {
				e["hostIP"] = p.HostIP
			}
			pm = append(pm, e)
		}
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// Attach gives a container a network namespace on the network and
// publishes its ports. On failure nothing of it is left.
func (m *Manager) Attach(ctx context.Context, containerID, network string, ports []PortMapping) (Attachment, error) {
	n, err := m.Get(network)
	if err != nil {
		return Attachment{}, err
	}
	list, err := m.confList(n)
	if err != nil {
		return Attachment{}, err
	}
	if err := m.ensureRules(n); err != nil {
		return Attachment{}, err
	}
	if err := m.reserve(containerID, ports, true); err != nil {
		return Attachment{}, err
	}
	path := m.netnsPath(containerID)
	if _, err := os.Stat(path); err == nil {
		// A namespace of an earlier run that a crash left: its lease
		// and rules go before the new ones are made.
		m.Detach(ctx, containerID, network)
		m.reserve(containerID, ports, true)
	}
	if err := newNetns(path); err != nil {
		m.release(containerID)
		return Attachment{}, fmt.Errorf("network namespace: %w", err)
	}
	rt := runtimeConf(containerID, path, ports)
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		// ADD may have done part of its work: DEL undoes what there is.
		m.cni.DelNetworkList(context.Background(), list, rt)
		removeNetns(path)
		m.release(containerID)
		return Attachment{}, fmt.Errorf("attach to network %s: %w", n.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil || len(r.IPs) == 0 {
		m.cni.DelNetworkList(context.Background(), list, rt)
		removeNetns(path)
		m.release(containerID)
		if err == nil {
			err = errors.New("no address assigned")
		}
		return Attachment{}, fmt.Errorf("attach to network %s: %w", n.Name, err)
	}
	a := Attachment{Network: n.Name, NetworkID: n.ID, Netns: path, Interface: "eth0", IP: r.IPs[0].Address.IP, Gateway: r.IPs[0].Gateway}
	a.PrefixLen, _ = r.IPs[0].Address.Mask.Size()
	for _, i := range r.Interfaces {
		if i.Name == "eth0" && i.Sandbox != "" {
			a.MAC = i.Mac
		}
	}
	return a, nil
}

// Detach undoes Attach: the plugins' DEL (lease, rules, veth) with the
// arguments ADD had, then the namespace.
//
// The namespace goes first: the kernel then takes the veth pair down with
// it, and the plugins have only what is outside it to undo (the lease,
// the port rules), which is most of the time a DEL takes saved.
func (m *Manager) Detach(ctx context.Context, containerID, network string) error {
	path := m.netnsPath(containerID)
	var errs []error
	m.release(containerID)
	if err := removeNetns(path); err != nil {
		errs = append(errs, err)
	}
	if n, err := m.Get(network); err == nil {
		if list, err := m.confList(n); err == nil {
			rt := runtimeConf(containerID, path, nil)
			if _, cached, err := m.cni.GetNetworkListCachedConfig(list, rt); err == nil && cached != nil {
				rt = cached
			}
			rt.NetNS = ""
			if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ensureRules puts in place a network's own rules, once: the one rule
// that lets its containers reach beyond the host (Docker's per-bridge
// MASQUERADE), instead of the bridge plugin's chain per container; or,
// for an internal network, the two that keep its traffic on its bridge.
func (m *Manager) ensureRules(n Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.masq[n.Name] {
		return nil
	}
	// The isolation chains, as Docker's: traffic that leaves a berth
	// bridge for another berth bridge is dropped (stage 1 matches what
	// leaves a bridge, stage 2 what enters any).
	for _, chain := range []string{isolation1, isolation2} {
		exec.Command("iptables", "-w", "-N", chain).Run() // exists already: fine
	}
	if exec.Command("iptables", "-w", "-C", "FORWARD", "-j", isolation1).Run() != nil {
		if out, err := exec.Command("iptables", "-w", "-I", "FORWARD", "-j", isolation1).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables chain %s: %v: %s", isolation1, err, out)
		}
	}
	for _, rule := range networkRules(n) {
		if exec.Command("iptables", iptablesArgs("-C", rule)...).Run() != nil {
			if out, err := exec.Command("iptables", iptablesArgs("-I", rule)...).CombinedOutput(); err != nil {
				return fmt.Errorf("iptables rule for network %s: %v: %s", n.Name, err, out)
			}
		}
	}
	m.masq[n.Name] = true
	return nil
}

// networkRules are a network's iptables rules, without the verb.
func networkRules(n Network) [][]string {
	comment := []string{"-m", "comment", "--comment", "berth network " + n.Name}
	rules := [][]string{
		append([]string{isolation1, "-i", n.Bridge, "!", "-o", n.Bridge}, append(comment, "-j", isolation2)...),
		append([]string{isolation2, "-o", n.Bridge}, append(comment, "-j", "DROP")...),
	}
	if n.Internal {
		return append(rules,
			append([]string{"FORWARD", "-i", n.Bridge, "!", "-o", n.Bridge}, append(comment, "-j", "DROP")...),
			append([]string{"FORWARD", "-o", n.Bridge, "!", "-i", n.Bridge}, append(comment, "-j", "DROP")...),
		)
	}
	return append(rules, append([]string{"-t", "nat", "POSTROUTING", "-s", n.Subnet, "!", "-o", n.Bridge}, append(comment, "-j", "MASQUERADE")...))
}

const (
	isolation1 = "BERTH-ISOLATION-1"
	isolation2 = "BERTH-ISOLATION-2"
)

// iptablesArgs puts the verb (-C, -I, -D) after a rule's table.
func iptablesArgs(verb string, rule []string) []string {
	args := []string{"-w"}
	if rule[0] == "-t" {
		args = append(args, rule[0], rule[1])
		rule = rule[2:]
	}
	return append(append(args, verb), rule...)
}

// removeRules takes a network's rules out (at its removal, or when a
// test or benchmark is done with a default network of its own).
func (m *Manager) removeRules(n Network) {
	for _, rule := range networkRules(n) {
		exec.Command("iptables", iptablesArgs("-D", rule)...).Run()
	}
	delete(m.masq, n.Name)
}

func portKey(p PortMapping, ip string) string {
	return fmt.Sprintf("%s/%s/%d", p.Protocol, ip, p.HostPort)
}

// reserve takes a container's published host ports, refusing one that
// another container has, or that a process of the host listens on
// (probed when probe is set: at a start, not when taking back ports
// the running containers hold already).
func (m *Manager) reserve(containerID string, ports []PortMapping, probe bool) error {
	m.portsMu.Lock()
	defer m.portsMu.Unlock()
	for _, p := range ports {
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		for key, owner := range m.ports {
			if owner == containerID {
				continue
			}
			var op PortMapping
			var oip string
			fmt.Sscanf(strings.ReplaceAll(key, "/", " "), "%s %s %d", &op.Protocol, &oip, &op.HostPort)
			if op.Protocol == p.Protocol && op.HostPort == p.HostPort && (oip == ip || oip == "0.0.0.0" || ip == "0.0.0.0") {
				m.releaseLocked(containerID)
				return fmt.Errorf("%w: bind for %s:%d failed: container %s publishes it", ErrPortTaken, ip, p.HostPort, owner[:12])
			}
		}
		if probe {
			if err := probePort(p.Protocol, ip, p.HostPort); err != nil {
				m.releaseLocked(containerID)
				return fmt.Errorf("%w: bind for %s:%d failed: %v", ErrPortTaken, ip, p.HostPort, err)
			}
		}
		m.ports[portKey(p, ip)] = containerID
	}
	return nil
}

// probePort tells whether a host port is free to publish: a process of
// the host listening on it would be bypassed by the DNAT rule.
func probePort(proto, ip string, port uint16) error {
	addr := net.JoinHostPort(ip, fmt.Sprint(port))
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// Reserve takes back the ports a running container publishes (at the
// engine's start).
func (m *Manager) Reserve(containerID string, ports []PortMapping) {
	m.reserve(containerID, ports, false)
}

func (m *Manager) release(containerID string) {
	m.portsMu.Lock()
	defer m.portsMu.Unlock()
	m.releaseLocked(containerID)
}

func (m *Manager) releaseLocked(containerID string) {
	for k, owner := range m.ports {
		if owner == containerID {
			delete(m.ports, k)
		}
	}
}

// Reconcile detaches every container with a namespace here that live
// does not name: what a crash between an exit and its cleanup left.
func (m *Manager) Reconcile(ctx context.Context, live func(containerID string) (network string, running bool)) {
	ents, _ := os.ReadDir(filepath.Join(m.cfg.RunDir, "netns"))
	for _, e := range ents {
		network, running := live(e.Name())
		if running {
			continue
		}
		if network == "" {
			network = m.cachedNetwork(e.Name())
		}
		m.Detach(ctx, e.Name(), network)
	}
}

// cachedNetwork finds a container's network from CNI's cache, for a
// namespace whose container record is gone.
func (m *Manager) cachedNetwork(containerID string) string {
	atts, err := m.cni.GetCachedAttachments(containerID)
	if err != nil {
		return ""
	}
	for _, a := range atts {
		if name, ok := cutPrefix(a.Network, "berth-"); ok {
			return name
		}
	}
	return ""
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// newNetns makes a network namespace and bind-mounts it on path, from a
// thread of its own that ends with it (a thread that changed namespace
// must not run other goroutines).
func newNetns(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		// Loopback is up in every container's namespace, as Docker's.
		if lo, err := netlink.LinkByName("lo"); err == nil {
			if err := netlink.LinkSetUp(lo); err != nil {
				errc <- fmt.Errorf("loopback: %w", err)
				return
			}
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		errc <- unix.Mount(src, path, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func removeNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// deleteLink removes a network's bridge.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkDel(l)
}
