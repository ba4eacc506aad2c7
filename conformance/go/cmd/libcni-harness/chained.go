package main

import (
	"fmt"
	"os/exec"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"weftconformance/internal/casekit"
	"weftconformance/internal/cnirt"
	"weftconformance/internal/netnsutil"
)

// metaPlugin is one reference plugin chained after the target: its configuration,
// what the runtime passes it, and how to see its effect on the host.
type metaPlugin struct {
	conf     map[string]any
	capArgs  func(hostPort int) map[string]any
	verify   func(t *casekit.T, p *pod, r *types100.Result, n *cnirt.Network)
	released func(t *casekit.T, p *pod, ip string)
}

func metaPlugins() map[string]metaPlugin {
	return map[string]metaPlugin{
		"portmap": {
			conf: map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
			capArgs: func(hostPort int) map[string]any {
				return map[string]any{"portMappings": []map[string]any{{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp"}}}
			},
			verify: func(t *casekit.T, p *pod, _ *types100.Result, _ *cnirt.Network) {
				if !strings.Contains(iptablesSave(t, "nat"), p.rt.ContainerID) {
					t.Fatalf("portmap installed no DNAT rule for the container")
				}
			},
			released: func(t *casekit.T, p *pod, _ string) {
				if strings.Contains(iptablesSave(t, "nat"), p.rt.ContainerID) {
					t.Fatalf("portmap DNAT rules remain after DEL")
				}
			},
		},
		"bandwidth": {
			// Rates in bits per second; bandwidth shapes on the host-side interface,
			// so it needs the plugin to report that interface in its result.
			conf: map[string]any{"type": "bandwidth", "ingressRate": 8000000, "ingressBurst": 80000, "egressRate": 8000000, "egressBurst": 80000},
			verify: func(t *casekit.T, _ *pod, r *types100.Result, _ *cnirt.Network) {
				hostIfs, err := cnirt.HostInterfaces(r)
				t.Must(err, "host interfaces")
				if len(hostIfs) == 0 {
					t.Fatalf("result has no host-side interface for bandwidth to shape")
				}
				out, err := exec.Command("tc", "qdisc", "show", "dev", hostIfs[0]).CombinedOutput()
				t.Must(err, "tc qdisc show")
				if !strings.Contains(string(out), "tbf") {
					t.Fatalf("no tbf qdisc on %s: %s", hostIfs[0], out)
				}
			},
		},
		"tuning": {
			conf: map[string]any{"type": "tuning", "mtu": 1400, "sysctl": map[string]any{"net.core.somaxconn": "512"}},
			verify: func(t *casekit.T, p *pod, _ *types100.Result, _ *cnirt.Network) {
				link, err := netnsutil.LinkIn(p.ns.Path, ifname)
				t.Must(err, "inspect pod interface")
				if link == nil || link.MTU != 1400 {
					t.Fatalf("tuning did not set MTU 1400 on %s: %+v", ifname, link)
				}
				out, err := p.ns.Exec("cat", "/proc/sys/net/core/somaxconn")
				t.Must(err, "read sysctl in the pod")
				if strings.TrimSpace(out) != "512" {
					t.Fatalf("net.core.somaxconn in the pod is %s, tuning set 512", strings.TrimSpace(out))
				}
			},
		},
		"firewall": {
			conf: map[string]any{"type": "firewall", "backend": "iptables"},
			verify: func(t *casekit.T, _ *pod, r *types100.Result, n *cnirt.Network) {
				ip := cnirt.PodAddress(r, n.Subnet).String()
				if !strings.Contains(iptablesSave(t, "filter"), ip+"/32") {
					t.Fatalf("firewall installed no rule for %s", ip)
				}
			},
			released: func(t *casekit.T, _ *pod, ip string) {
				if strings.Contains(iptablesSave(t, "filter"), ip+"/32") {
					t.Fatalf("firewall rules for %s remain after DEL", ip)
				}
			},
		},
	}
}

// chainedCases: the target with one meta plugin after it, then with all of them, per version.
func (s *suite) chainedCases(versions, chain []string) []casekit.Case {
	known := metaPlugins()
	var cs []casekit.Case
	hostPort := 18000 + s.h.subnets*10
	for _, v := range versions {
		v := v
		combos := [][]string{}
		for _, name := range chain {
			combos = append(combos, []string{name})
		}
		if len(chain) > 1 {
			combos = append(combos, chain)
		}
		for _, combo := range combos {
			combo := combo
			label := strings.Join(combo, "+")
			if len(combo) == len(chain) && len(chain) > 1 {
				label = "all"
			}
			hostPort++
			port := hostPort
			cs = append(cs, casekit.Case{Name: fmt.Sprintf("%s/%s", v, label), Run: func(t *casekit.T) {
				s.runChained(t, v, combo, known, port)
			}})
		}
	}
	return cs
}

func (s *suite) runChained(t *casekit.T, v string, combo []string, known map[string]metaPlugin, hostPort int) {
	var confs []map[string]any
	for _, name := range combo {
		mp, ok := known[name]
		if !ok {
			t.Fatalf("unknown meta plugin %q", name)
		}
		if _, err := s.h.cni.GetVersionInfo(t.Ctx, name); err != nil {
			t.Skipf("%s is not in CNI_PATH: %v", name, err)
		}
		confs = append(confs, mp.conf)
	}
	n := s.newNetwork(v, strings.Join(combo, "-")[:min(len(strings.Join(combo, "-")), 12)], confs...)
	p := s.newPod(t)
	p.rt.CapabilityArgs = map[string]any{}
	for _, name := range combo {
		if f := known[name].capArgs; f != nil {
			for k, val := range f(hostPort) {
				p.rt.CapabilityArgs[k] = val
			}
		}
	}

	r := s.add(t, n, p)
	// The chain must pass the target's result on: the pod interface and its address survive.
	s.verifyAttached(t, n, p, r)
	for _, name := range combo {
		known[name].verify(t, p, r, n)
	}
	if atLeast(v, "0.4.0") {
		err := s.h.cni.CheckNetworkList(t.Ctx, s.list(t, n), p.rt)
		if err != nil && contains(combo, "portmap") && strings.Contains(err.Error(), "could not check ipv6 dnat") {
			// Debian's portmap 1.1.1 looks for IPv6 rules it never made for an IPv4-only pod.
			t.Notef("CHECK: tolerated reference portmap bug containernetworking/plugins#819 (%v)", err)
		} else {
			t.Must(err, "CHECK of the chain")
		}
	}
	s.del(t, n, p)
	s.verifyReleased(t, n, p, r)
	ip := cnirt.PodAddress(r, n.Subnet).String()
	for _, name := range combo {
		if f := known[name].released; f != nil {
			f(t, p, ip)
		}
	}
}

func iptablesSave(t *casekit.T, table string) string {
	out, err := exec.Command("iptables-save", "-t", table).CombinedOutput()
	t.Must(err, "iptables-save")
	return string(out)
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
