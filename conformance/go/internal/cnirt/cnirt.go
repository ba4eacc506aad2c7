// Package cnirt is the runtime side shared by the harnesses: the plugin under test
// (a generic target), network configuration lists built for a given spec version,
// host-local reservation files, and checks of a result against the real namespace.
package cnirt

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"weftconformance/internal/netnsutil"
)

// SpecVersions are the versions libcni 1.1.2 can drive; 1.1.0 has its own harness.
var SpecVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0"}

// BuiltinTargets are plugin configurations (without "ipam") the suite knows by name.
// The string "@BRIDGE@" anywhere in a configuration becomes a scratch bridge name, one
// per network (the bridge plugin allows one gateway address per bridge).
var BuiltinTargets = map[string]string{
	"bridge": `{"type":"bridge","bridge":"@BRIDGE@","isGateway":true}`,
	"ptp":    `{"type":"ptp"}`,
	// degraded: the suite runs without a weft-agent, and ADD must still work.
	"weft": `{"type":"weft-cni","mode":"veth","degraded":true}`,
}

// Target is the plugin under test: its type and the rest of its configuration.
type Target struct {
	Name string
	Conf map[string]any
}

// ParseTarget takes a builtin name or "name=JSON" for any other plugin.
func ParseTarget(spec string) (Target, error) {
	name, raw := spec, ""
	if i := strings.IndexByte(spec, '='); i >= 0 {
		name, raw = spec[:i], spec[i+1:]
	} else if b, ok := BuiltinTargets[spec]; ok {
		raw = b
	} else {
		return Target{}, fmt.Errorf("unknown target %q (builtin: bridge, ptp, weft; or NAME='{\"type\":...}')", spec)
	}
	conf := map[string]any{}
	if err := json.Unmarshal([]byte(raw), &conf); err != nil {
		return Target{}, fmt.Errorf("target %s: %v", name, err)
	}
	if _, ok := conf["type"].(string); !ok {
		return Target{}, fmt.Errorf("target %s: configuration has no \"type\"", name)
	}
	return Target{Name: name, Conf: conf}, nil
}

func (t Target) Type() string { return t.Conf["type"].(string) }

// UsesBridge tells whether networks of this target need a scratch bridge name.
func (t Target) UsesBridge() bool {
	for _, v := range t.Conf {
		if v == "@BRIDGE@" {
			return true
		}
	}
	return false
}

// Network is one configuration list: the target (with IPAM) followed by chained plugins.
type Network struct {
	Name        string
	Version     string
	CNIVersions []string // spec 1.1.0 "cniVersions"; omitted when empty
	Subnet      *net.IPNet
	IPAMType    string
	DataDir     string
	Plugins     []map[string]any
}

// NewNetwork builds the list [target+ipam, chained...]; bridge replaces "@BRIDGE@".
func NewNetwork(name, version string, target Target, bridge, ipamType string, subnet *net.IPNet, dataDir string, chained ...map[string]any) *Network {
	main := map[string]any{}
	for k, v := range target.Conf {
		if v == "@BRIDGE@" {
			v = bridge
		}
		main[k] = v
	}
	main["ipam"] = map[string]any{
		"type":    ipamType,
		"ranges":  [][]map[string]any{{{"subnet": subnet.String()}}},
		"routes":  []map[string]any{{"dst": "0.0.0.0/0"}},
		"dataDir": dataDir,
	}
	return &Network{Name: name, Version: version, Subnet: subnet, IPAMType: ipamType, DataDir: dataDir,
		Plugins: append([]map[string]any{main}, chained...)}
}

func (n *Network) Bytes() []byte {
	doc := map[string]any{"cniVersion": n.Version, "name": n.Name, "plugins": n.Plugins}
	if len(n.CNIVersions) > 0 {
		doc["cniVersions"] = n.CNIVersions
	}
	b, _ := json.Marshal(doc)
	return b
}

// ConfList parses the list the way a runtime does, with libcni.
func (n *Network) ConfList() (*libcni.NetworkConfigList, error) {
	return libcni.ConfListFromBytes(n.Bytes())
}

// Reservations reads host-local's on-disk store: IP -> container ID.
// weft-host-local promises the same layout (BRIEF: "on-disk compatible").
func Reservations(dataDir, network string) (map[string]string, error) {
	dir := filepath.Join(dataDir, network)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue // lock, last_reserved_ip.N
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		// host-local writes "ID" or "ID\r\nIFNAME" (newer releases).
		out[e.Name()] = strings.TrimSpace(strings.SplitN(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", 2)[0])
	}
	return out, nil
}

// HeldBy lists the IPs reserved for containerID.
func HeldBy(res map[string]string, containerID string) []string {
	var ips []string
	for ip, id := range res {
		if id == containerID {
			ips = append(ips, ip)
		}
	}
	sort.Strings(ips)
	return ips
}

// Normalize parses any result into libcni's 1.0.0 types, checking it carries the asked version.
func Normalize(res types.Result, wantVersion string) (*types100.Result, error) {
	if res == nil {
		return nil, fmt.Errorf("no result")
	}
	if res.Version() != wantVersion {
		return nil, fmt.Errorf("result cniVersion %q, configuration asked for %q", res.Version(), wantVersion)
	}
	return types100.NewResultFromResult(res)
}

// SandboxInterface checks the shape of a result for an attachment of ifname in nsPath:
// a sandbox interface with that name, IPs that point at valid interfaces, and returns
// the sandbox interface's index.
func SandboxInterface(r *types100.Result, ifname, nsPath string) (int, error) {
	if len(r.Interfaces) == 0 {
		return -1, fmt.Errorf("result has no interfaces")
	}
	idx := -1
	for i, iface := range r.Interfaces {
		if iface.Name == ifname && iface.Sandbox != "" {
			if iface.Sandbox != nsPath {
				return -1, fmt.Errorf("interface %s sandbox %q, want %q", ifname, iface.Sandbox, nsPath)
			}
			idx = i
		}
	}
	if idx < 0 {
		return -1, fmt.Errorf("result lists no sandbox interface named %s: %s", ifname, compact(r))
	}
	if len(r.IPs) == 0 {
		return -1, fmt.Errorf("result has no ips")
	}
	for _, ip := range r.IPs {
		if ip.Interface != nil && (*ip.Interface < 0 || *ip.Interface >= len(r.Interfaces)) {
			return -1, fmt.Errorf("ip %s points at interface index %d of %d", ip.Address.String(), *ip.Interface, len(r.Interfaces))
		}
	}
	return idx, nil
}

// VerifyAttached looks inside the namespace: the interface exists, is up, has the MAC
// and every address the result claims for it, and the result's routes exist.
func VerifyAttached(r *types100.Result, ifname, nsPath string, subnet *net.IPNet) error {
	idx, err := SandboxInterface(r, ifname, nsPath)
	if err != nil {
		return err
	}
	link, err := netnsutil.LinkIn(nsPath, ifname)
	if err != nil {
		return err
	}
	if link == nil {
		return fmt.Errorf("no %s inside %s", ifname, nsPath)
	}
	if !link.Up {
		return fmt.Errorf("%s inside the pod is down", ifname)
	}
	if mac := r.Interfaces[idx].Mac; mac != "" && !strings.EqualFold(mac, link.MAC) {
		return fmt.Errorf("result MAC %s, %s has %s", mac, ifname, link.MAC)
	}
	inSubnet := 0
	for _, ip := range r.IPs {
		if ip.Interface != nil && *ip.Interface != idx {
			continue
		}
		if !link.HasAddr(ip.Address) {
			return fmt.Errorf("result address %s missing on %s (has %v)", ip.Address.String(), ifname, link.Addrs)
		}
		if subnet != nil && subnet.Contains(ip.Address.IP) {
			inSubnet++
		}
	}
	if subnet != nil && inSubnet == 0 {
		return fmt.Errorf("no address from %s on %s", subnet, ifname)
	}
	routes, err := netnsutil.RoutesIn(nsPath)
	if err != nil {
		return err
	}
	for _, rt := range r.Routes {
		if !netnsutil.HasRoute(routes, rt.Dst, rt.GW) {
			return fmt.Errorf("result route %s via %v missing in the pod", rt.Dst.String(), rt.GW)
		}
	}
	return nil
}

// HostInterfaces lists the result's host-side interfaces that are per-attachment
// (veths), leaving out shared devices such as the bridge.
func HostInterfaces(r *types100.Result) ([]string, error) {
	var names []string
	for _, iface := range r.Interfaces {
		if iface.Sandbox != "" {
			continue
		}
		link, err := netnsutil.HostLink(iface.Name)
		if err != nil {
			return nil, err
		}
		if link != nil && link.Kind == "bridge" {
			continue
		}
		names = append(names, iface.Name)
	}
	return names, nil
}

// PodAddress is the first address of the result on the subnet.
func PodAddress(r *types100.Result, subnet *net.IPNet) net.IP {
	for _, ip := range r.IPs {
		if subnet.Contains(ip.Address.IP) {
			return ip.Address.IP
		}
	}
	return nil
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Compact is JSON on one line, for failure messages.
func Compact(v any) string { return compact(v) }
