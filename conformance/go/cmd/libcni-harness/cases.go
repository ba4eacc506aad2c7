package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"weftconformance/internal/casekit"
	"weftconformance/internal/cnirt"
	"weftconformance/internal/netnsutil"
)

const ifname = "eth0"

// suite is one plugin under test paired with one IPAM plugin.
type suite struct {
	h      *harness
	target cnirt.Target
	ipam   string
	nets   map[string]*cnirt.Network
}

// network returns the suite's network for a version (one per version: its own name,
// subnet and IPAM store), made on first use.
func (s *suite) network(v string) *cnirt.Network {
	if s.nets == nil {
		s.nets = map[string]*cnirt.Network{}
	}
	if n, ok := s.nets[v]; ok {
		return n
	}
	n := s.newNetwork(v, "")
	s.nets[v] = n
	return n
}

func (s *suite) newNetwork(v, tag string, chained ...map[string]any) *cnirt.Network {
	name := fmt.Sprintf("%s-%s-%s-v%s", s.h.o.prefix, s.target.Name, s.ipam, strings.ReplaceAll(v, ".", ""))
	if tag != "" {
		name += "-" + tag
	}
	bridge := ""
	if s.target.UsesBridge() {
		bridge = s.h.newBridgeName()
	}
	return cnirt.NewNetwork(name, v, s.target, bridge, s.ipam, s.h.nextSubnet(), filepath.Join(s.h.tmp, "ipam"), chained...)
}

// pod is one sandbox: a scratch namespace plus the runtime's view of the attachment.
type pod struct {
	ns *netnsutil.Netns
	rt *libcni.RuntimeConf
}

func (s *suite) newPod(t *casekit.T) *pod {
	ns, err := netnsutil.New(s.h.o.prefix)
	t.Must(err, "make namespace")
	t.Cleanup(ns.Remove)
	id := netnsutil.RandomName(s.h.o.prefix+"-") + "-" + strings.ReplaceAll(t.Name(), "/", "-")
	return &pod{ns: ns, rt: &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       ns.Path,
		IfName:      ifname,
		// What kubelet/containerd pass; IgnoreUnknown keeps strict plugins happy.
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "conformance"}, {"K8S_POD_NAME", ns.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", id}},
	}}
}

func (s *suite) list(t *casekit.T, n *cnirt.Network) *libcni.NetworkConfigList {
	l, err := n.ConfList()
	t.Must(err, "libcni.ConfListFromBytes")
	return l
}

// add runs ADD through libcni, checks the result's shape and version, and registers a
// best-effort DEL so a failing case leaves nothing behind.
func (s *suite) add(t *casekit.T, n *cnirt.Network, p *pod) *types100.Result {
	l := s.list(t, n)
	t.Cleanup(func() { _ = s.h.cni.DelNetworkList(t.Ctx, l, p.rt) })
	res, err := s.h.cni.AddNetworkList(t.Ctx, l, p.rt)
	t.Must(err, "ADD")
	r, err := cnirt.Normalize(res, n.Version)
	t.Must(err, "ADD result")
	_, err = cnirt.SandboxInterface(r, ifname, p.ns.Path)
	t.Must(err, "ADD result")
	return r
}

func (s *suite) del(t *casekit.T, n *cnirt.Network, p *pod) {
	t.Must(s.h.cni.DelNetworkList(t.Ctx, s.list(t, n), p.rt), "DEL")
}

// verifyReleased checks that DEL took back everything ADD made: the pod interface,
// the host-side veth(s), the IP reservation and libcni's cached result.
func (s *suite) verifyReleased(t *casekit.T, n *cnirt.Network, p *pod, r *types100.Result) {
	if link, err := netnsutil.LinkIn(p.ns.Path, ifname); err == nil && link != nil {
		t.Fatalf("after DEL, %s still exists in the pod with %v", ifname, link.Addrs)
	}
	if r != nil {
		for _, iface := range r.Interfaces {
			if iface.Sandbox != "" {
				continue
			}
			// A deleted namespace is torn down asynchronously by the kernel, taking its
			// veth peers with it: allow it a moment.
			deadline := time.Now().Add(3 * time.Second)
			for {
				link, _ := netnsutil.HostLink(iface.Name)
				if link == nil || link.Kind == "bridge" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after DEL, host interface %s (%s) still exists", iface.Name, link.Kind)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	s.verifyNoReservation(t, n, p)
	cached, err := s.h.cni.GetNetworkListCachedResult(s.list(t, n), p.rt)
	t.Must(err, "read libcni cache")
	if cached != nil {
		t.Fatalf("after DEL, libcni still caches a result")
	}
}

func (s *suite) verifyNoReservation(t *casekit.T, n *cnirt.Network, p *pod) {
	res, err := cnirt.Reservations(n.DataDir, n.Name)
	t.Must(err, "read IPAM store")
	if held := cnirt.HeldBy(res, p.rt.ContainerID); len(held) > 0 {
		t.Fatalf("IPAM still holds %v for the container", held)
	}
}

func (s *suite) verifyAttached(t *casekit.T, n *cnirt.Network, p *pod, r *types100.Result) {
	t.Must(cnirt.VerifyAttached(r, ifname, p.ns.Path, n.Subnet), "pod state")
	res, err := cnirt.Reservations(n.DataDir, n.Name)
	t.Must(err, "read IPAM store")
	ip := cnirt.PodAddress(r, n.Subnet)
	if res[ip.String()] != p.rt.ContainerID {
		t.Fatalf("IPAM store %s has no reservation of %s for the container (store: %v)", filepath.Join(n.DataDir, n.Name), ip, res)
	}
	hostIfs, err := cnirt.HostInterfaces(r)
	t.Must(err, "host interfaces")
	for _, name := range hostIfs {
		if link, _ := netnsutil.HostLink(name); link == nil {
			t.Fatalf("result names host interface %s, which does not exist", name)
		}
	}
}

func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

// cases is the single-plugin case table, repeated for every spec version.
func (s *suite) cases(versions []string) []casekit.Case {
	var cs []casekit.Case
	for _, v := range versions {
		v := v
		row := func(name string, run func(t *casekit.T, n *cnirt.Network)) {
			cs = append(cs, casekit.Case{Name: v + "/" + name, Run: func(t *casekit.T) { run(t, s.network(v)) }})
		}

		row("version-info", func(t *casekit.T, n *cnirt.Network) {
			for _, typ := range []string{s.target.Type(), s.ipam} {
				info, err := s.h.cni.GetVersionInfo(t.Ctx, typ)
				t.Must(err, "VERSION of "+typ)
				if !contains(info.SupportedVersions(), v) {
					t.Fatalf("%s does not list %s in supportedVersions %v", typ, v, info.SupportedVersions())
				}
			}
		})

		row("validate", func(t *casekit.T, n *cnirt.Network) {
			_, err := s.h.cni.ValidateNetworkList(t.Ctx, s.list(t, n))
			t.Must(err, "ValidateNetworkList")
		})

		row("add", func(t *casekit.T, n *cnirt.Network) {
			p := s.newPod(t)
			r := s.add(t, n, p)
			s.verifyAttached(t, n, p, r)
			cached, err := s.h.cni.GetNetworkListCachedResult(s.list(t, n), p.rt)
			t.Must(err, "libcni cached result")
			c, err := cnirt.Normalize(cached, v)
			t.Must(err, "cached result")
			if cnirt.Compact(c) != cnirt.Compact(r) {
				t.Fatalf("cached result %s differs from ADD result %s", cnirt.Compact(c), cnirt.Compact(r))
			}
		})

		row("check", func(t *casekit.T, n *cnirt.Network) {
			if !atLeast(v, "0.4.0") {
				t.Skipf("CHECK is defined from spec 0.4.0 (libcni refuses it for %s)", v)
			}
			p := s.newPod(t)
			s.add(t, n, p)
			t.Must(s.h.cni.CheckNetworkList(t.Ctx, s.list(t, n), p.rt), "CHECK right after ADD")
		})

		row("check-detects-missing-interface", func(t *casekit.T, n *cnirt.Network) {
			if !atLeast(v, "0.4.0") {
				t.Skipf("CHECK is defined from spec 0.4.0")
			}
			p := s.newPod(t)
			s.add(t, n, p)
			_, err := p.ns.Exec("ip", "link", "del", ifname)
			t.Must(err, "remove the pod interface behind the plugin's back")
			if err := s.h.cni.CheckNetworkList(t.Ctx, s.list(t, n), p.rt); err == nil {
				t.Fatalf("CHECK passed although %s listed in prevResult is gone", ifname)
			}
		})

		row("add-repeated", func(t *casekit.T, n *cnirt.Network) {
			// The spec forbids a runtime to ADD twice, but runtimes do after crashes:
			// the plugin may refuse or redo it, and must neither break the attachment nor leak.
			p := s.newPod(t)
			first := s.add(t, n, p)
			res, err := s.h.cni.AddNetworkList(t.Ctx, s.list(t, n), p.rt)
			current := first
			if err == nil {
				current, err = cnirt.Normalize(res, v)
				t.Must(err, "second ADD result")
			} else {
				var cniErr *types.Error
				if !errors.As(err, &cniErr) {
					t.Fatalf("second ADD failed without a CNI error on stdout: %v", err)
				}
			}
			s.verifyAttached(t, n, p, current)
			held, _ := cnirt.Reservations(n.DataDir, n.Name)
			if ips := cnirt.HeldBy(held, p.rt.ContainerID); len(ips) != 1 {
				t.Fatalf("after two ADDs the container holds %d addresses %v, want 1", len(ips), ips)
			}
			s.del(t, n, p)
			s.verifyReleased(t, n, p, current)
		})

		row("del", func(t *casekit.T, n *cnirt.Network) {
			p := s.newPod(t)
			r := s.add(t, n, p)
			s.del(t, n, p)
			s.verifyReleased(t, n, p, r)
		})

		row("del-twice", func(t *casekit.T, n *cnirt.Network) {
			p := s.newPod(t)
			r := s.add(t, n, p)
			s.del(t, n, p)
			t.Must(s.h.cni.DelNetworkList(t.Ctx, s.list(t, n), p.rt), "second DEL (must be idempotent)")
			s.verifyReleased(t, n, p, r)
		})

		row("del-unknown-container", func(t *casekit.T, n *cnirt.Network) {
			p := s.newPod(t)
			t.Must(s.h.cni.DelNetworkList(t.Ctx, s.list(t, n), p.rt), "DEL of a container never added")
		})

		row("del-after-netns-gone", func(t *casekit.T, n *cnirt.Network) {
			p := s.newPod(t)
			r := s.add(t, n, p)
			p.ns.Remove()
			t.Must(s.h.cni.DelNetworkList(t.Ctx, s.list(t, n), p.rt), "DEL after the namespace is gone")
			s.verifyReleased(t, n, p, r)
		})

		row("del-without-netns", func(t *casekit.T, n *cnirt.Network) {
			// Spec: with no CNI_NETNS the plugin still releases what it can (IPAM) and succeeds.
			p := s.newPod(t)
			s.add(t, n, p)
			rt := *p.rt
			rt.NetNS = ""
			t.Must(s.h.cni.DelNetworkList(t.Ctx, s.list(t, n), &rt), "DEL with an empty CNI_NETNS")
			s.verifyNoReservation(t, n, p)
		})

		row("pod-to-pod", func(t *casekit.T, n *cnirt.Network) {
			a, b := s.newPod(t), s.newPod(t)
			ra, rb := s.add(t, n, a), s.add(t, n, b)
			ipa, ipb := cnirt.PodAddress(ra, n.Subnet), cnirt.PodAddress(rb, n.Subnet)
			t.Must(a.ns.Ping(ipb), "ping pod b from pod a")
			t.Must(b.ns.Ping(ipa), "ping pod a from pod b")
		})

		if v == versions[len(versions)-1] {
			row("parallel-add-del", func(t *casekit.T, n *cnirt.Network) { s.parallelAddDel(t, n, 8) })
		}

		row("add-bad-ipam-config", func(t *casekit.T, n *cnirt.Network) {
			bad := s.newNetwork(v, "bad")
			bad.Plugins[0]["ipam"].(map[string]any)["ranges"] = [][]map[string]any{{{"subnet": "10.999.0.0/24"}}}
			p := s.newPod(t)
			l := s.list(t, bad)
			t.Cleanup(func() { _ = s.h.cni.DelNetworkList(t.Ctx, l, p.rt) })
			_, err := s.h.cni.AddNetworkList(t.Ctx, l, p.rt)
			var cniErr *types.Error
			if err == nil {
				t.Fatalf("ADD accepted the subnet 10.999.0.0/24")
			}
			if !errors.As(err, &cniErr) || cniErr.Code == 0 || cniErr.Msg == "" {
				t.Fatalf("want a CNI error (JSON with code and msg on stdout), got %v", err)
			}
			s.verifyNoReservation(t, bad, p)
			if s.h.o.strict {
				// weft's contract (BRIEF: bad input changes nothing on the host), beyond the
				// spec: the reference bridge leaves the pod's veth behind here.
				if link, _ := netnsutil.LinkIn(p.ns.Path, ifname); link != nil {
					t.Fatalf("failed ADD left %s in the pod (strict)", ifname)
				}
			}
		})
	}
	return cs
}

// parallelAddDel attaches and detaches several pods at once, as a runtime may for
// different containers: every pod gets its own address and nothing leaks.
func (s *suite) parallelAddDel(t *casekit.T, n *cnirt.Network, pods int) {
	l := s.list(t, n)
	ps := make([]*pod, pods)
	for i := range ps {
		ps[i] = s.newPod(t)
		p := ps[i]
		t.Cleanup(func() { _ = s.h.cni.DelNetworkList(t.Ctx, l, p.rt) })
	}
	results := make([]*types100.Result, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := s.h.cni.AddNetworkList(t.Ctx, l, ps[i].rt)
			if err == nil {
				results[i], err = cnirt.Normalize(res, n.Version)
			}
			if err == nil {
				err = cnirt.VerifyAttached(results[i], ifname, ps[i].ns.Path, n.Subnet)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	seen := map[string]int{}
	for i, err := range errs {
		t.Must(err, fmt.Sprintf("parallel ADD of pod %d", i))
		ip := cnirt.PodAddress(results[i], n.Subnet).String()
		if j, dup := seen[ip]; dup {
			t.Fatalf("pods %d and %d both got %s", j, i, ip)
		}
		seen[ip] = i
	}
	for i := range ps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = s.h.cni.DelNetworkList(t.Ctx, l, ps[i].rt)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		t.Must(err, fmt.Sprintf("parallel DEL of pod %d", i))
		s.verifyReleased(t, n, ps[i], results[i])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
