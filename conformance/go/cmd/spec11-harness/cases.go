package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"weftconformance/internal/casekit"
	"weftconformance/internal/cnirt"
	"weftconformance/internal/netnsutil"
)

const ifname = "eth0"

type suite struct {
	env    *env
	target cnirt.Target
	ipam   string
}

type pod struct {
	ns *netnsutil.Netns
	id string
}

// attachment is what the runtime remembers of a successful ADD.
type attachment struct {
	pod    *pod
	raw    map[string]any // the final result as the plugin printed it (next prevResult)
	result *types100.Result
}

func (s *suite) network(t *casekit.T, tag string, cniVersion string, cniVersions ...string) *cnirt.Network {
	name := fmt.Sprintf("%s-%s-%s-%s", s.env.prefix, s.target.Name, s.ipam, tag)
	bridge := ""
	if s.target.UsesBridge() {
		bridge = s.env.newBridgeName()
	}
	n := cnirt.NewNetwork(name, cniVersion, s.target, bridge, s.ipam, s.env.nextSubnet(), filepath.Join(s.env.tmp, "ipam"))
	n.CNIVersions = cniVersions
	return n
}

func (s *suite) newPod(t *casekit.T) *pod {
	ns, err := netnsutil.New(s.env.prefix)
	t.Must(err, "make namespace")
	t.Cleanup(ns.Remove)
	return &pod{ns: ns, id: netnsutil.RandomName(s.env.prefix+"-") + "-" + strings.ReplaceAll(t.Name(), "/", "-")}
}

func (s *suite) attachReq(cmd string, n *cnirt.Network, v string, p *pod, plugin map[string]any, extra map[string]any) request {
	return request{Command: cmd, ContainerID: p.id, NetNS: p.ns.Path, IfName: ifname,
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=conformance;K8S_POD_NAME=" + p.ns.Name,
		Conf: pluginConf(plugin, n.Name, v, extra)}
}

// add runs the list's ADD at version v, passing each plugin's result to the next.
func (s *suite) add(t *casekit.T, n *cnirt.Network, v string, p *pod) *attachment {
	var prev map[string]any
	t.Cleanup(func() { s.delQuiet(t, n, v, p, prev) })
	for _, plugin := range n.Plugins {
		extra := map[string]any{}
		if prev != nil {
			extra["prevResult"] = prev
		}
		c, err := s.env.rt.exec(t.Ctx, pluginTypeOf(plugin), s.attachReq("ADD", n, v, p, plugin, extra))
		t.Must(err, "exec ADD")
		t.Must(c.ok("ADD "+pluginTypeOf(plugin)), "ADD")
		prev = map[string]any{}
		t.Must(json.Unmarshal(c.Stdout, &prev), "ADD result is not JSON")
	}
	if got, _ := prev["cniVersion"].(string); got != v {
		t.Fatalf("ADD result cniVersion %q, the runtime negotiated %q", got, v)
	}
	// libcni 1.1.2 has no 1.1.0 types; the 1.0.0 ones read every field it knows of.
	var r types100.Result
	b, _ := json.Marshal(prev)
	t.Must(json.Unmarshal(b, &r), "decode ADD result")
	t.Must(cnirt.VerifyAttached(&r, ifname, p.ns.Path, n.Subnet), "pod state after ADD")
	return &attachment{pod: p, raw: prev, result: &r}
}

func (s *suite) del(t *casekit.T, n *cnirt.Network, v string, a *attachment) {
	for i := len(n.Plugins) - 1; i >= 0; i-- {
		plugin := n.Plugins[i]
		c, err := s.env.rt.exec(t.Ctx, pluginTypeOf(plugin), s.attachReq("DEL", n, v, a.pod, plugin, map[string]any{"prevResult": a.raw}))
		t.Must(err, "exec DEL")
		t.Must(c.ok("DEL "+pluginTypeOf(plugin)), "DEL")
	}
}

func (s *suite) delQuiet(t *casekit.T, n *cnirt.Network, v string, p *pod, prev map[string]any) {
	for i := len(n.Plugins) - 1; i >= 0; i-- {
		extra := map[string]any{}
		if prev != nil {
			extra["prevResult"] = prev
		}
		_, _ = s.env.rt.exec(t.Ctx, pluginTypeOf(n.Plugins[i]), s.attachReq("DEL", n, v, p, n.Plugins[i], extra))
	}
}

// gc sends GC to every plugin of the list with the runtime's valid attachments.
func (s *suite) gc(t *casekit.T, n *cnirt.Network, valid ...*attachment) {
	list := []map[string]any{}
	for _, a := range valid {
		list = append(list, map[string]any{"containerID": a.pod.id, "ifname": ifname})
	}
	for _, plugin := range n.Plugins {
		c, err := s.env.rt.exec(t.Ctx, pluginTypeOf(plugin), request{Command: "GC",
			Conf: pluginConf(plugin, n.Name, "1.1.0", map[string]any{"cni.dev/valid-attachments": list})})
		t.Must(err, "exec GC")
		t.Must(c.ok("GC "+pluginTypeOf(plugin)), "GC")
		if len(strings.TrimSpace(string(c.Stdout))) > 0 {
			t.Fatalf("GC succeeded but printed on stdout: %s", trim(c.Stdout))
		}
	}
}

func (s *suite) held(t *casekit.T, n *cnirt.Network, p *pod) []string {
	res, err := cnirt.Reservations(n.DataDir, n.Name)
	t.Must(err, "read IPAM store")
	return cnirt.HeldBy(res, p.id)
}

// requires11 skips unless the target and its IPAM both claim spec 1.1.0: a runtime
// must not send GC or STATUS to a plugin speaking an older version.
func (s *suite) requires11(t *casekit.T) {
	for _, typ := range []string{s.target.Type(), s.ipam} {
		info, err := s.env.rt.versionInfo(t.Ctx, typ)
		t.Must(err, "VERSION of "+typ)
		if !contains(info.SupportedVersions(), "1.1.0") {
			t.Skipf("%s does not claim spec 1.1.0 (supportedVersions %v)", typ, info.SupportedVersions())
		}
	}
}

func (s *suite) cases() []casekit.Case {
	return []casekit.Case{
		{Name: "version/claims-1.1.0", Run: func(t *casekit.T) { s.requires11(t) }},

		{Name: "negotiate/highest-common-version", Run: func(t *casekit.T) {
			listed := []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0", "42.0.0"}
			n := s.network(t, "nego", "0.4.0", listed...)
			var doc map[string]any
			t.Must(json.Unmarshal(n.Bytes(), &doc), "conflist")
			v, err := s.env.rt.negotiate(t.Ctx, doc, []string{s.target.Type(), s.ipam})
			t.Must(err, "negotiate")
			want := "1.0.0"
			if s.claims(t, "1.1.0") {
				want = "1.1.0"
			}
			if v != want {
				t.Fatalf("negotiated %s from %v, want %s", v, listed, want)
			}
			p := s.newPod(t)
			a := s.add(t, n, v, p)
			s.del(t, n, v, a)
			if held := s.held(t, n, p); len(held) > 0 {
				t.Fatalf("DEL left reservations %v", held)
			}
			t.Notef("negotiated %s", v)
		}},

		{Name: "negotiate/older-runtime-uses-cniVersion", Run: func(t *casekit.T) {
			// A list carrying cniVersions must still work for runtimes that predate it
			// (libcni 1.1.2 reads only cniVersion).
			n := s.network(t, "oldrt", "1.0.0", "1.0.0", "1.1.0")
			l, err := libcni.ConfListFromBytes(n.Bytes())
			t.Must(err, "libcni 1.1.2 parses the list")
			if l.CNIVersion != "1.0.0" {
				t.Fatalf("libcni read cniVersion %q", l.CNIVersion)
			}
			cni := libcni.NewCNIConfigWithCacheDir(s.env.rt.paths, filepath.Join(s.env.tmp, "cache"), nil)
			p := s.newPod(t)
			rt := &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.ns.Path, IfName: ifname}
			t.Cleanup(func() { _ = cni.DelNetworkList(t.Ctx, l, rt) })
			res, err := cni.AddNetworkList(t.Ctx, l, rt)
			t.Must(err, "ADD through libcni 1.1.2")
			r, err := cnirt.Normalize(res, "1.0.0")
			t.Must(err, "ADD result")
			t.Must(cnirt.VerifyAttached(r, ifname, p.ns.Path, n.Subnet), "pod state")
			t.Must(cni.DelNetworkList(t.Ctx, l, rt), "DEL through libcni 1.1.2")
		}},

		{Name: "add-check-del-at-1.1.0", Run: func(t *casekit.T) {
			s.requires11(t)
			n := s.network(t, "v110", "1.1.0")
			p := s.newPod(t)
			a := s.add(t, n, "1.1.0", p)
			for _, plugin := range n.Plugins {
				c, err := s.env.rt.exec(t.Ctx, pluginTypeOf(plugin), s.attachReq("CHECK", n, "1.1.0", p, plugin, map[string]any{"prevResult": a.raw}))
				t.Must(err, "exec CHECK")
				t.Must(c.ok("CHECK"), "CHECK")
			}
			s.del(t, n, "1.1.0", a)
			if held := s.held(t, n, p); len(held) > 0 {
				t.Fatalf("DEL left reservations %v", held)
			}
		}},

		{Name: "status/ready", Run: func(t *casekit.T) {
			s.requires11(t)
			n := s.network(t, "status", "1.1.0")
			for _, plugin := range n.Plugins {
				// STATUS carries no attachment: no CNI_CONTAINERID, CNI_NETNS or CNI_IFNAME.
				c, err := s.env.rt.exec(t.Ctx, pluginTypeOf(plugin), request{Command: "STATUS", Conf: pluginConf(plugin, n.Name, "1.1.0", nil)})
				t.Must(err, "exec STATUS")
				t.Must(c.ok("STATUS"), "STATUS of a ready plugin")
				if len(strings.TrimSpace(string(c.Stdout))) > 0 {
					t.Fatalf("STATUS succeeded but printed on stdout: %s", trim(c.Stdout))
				}
			}
		}},

		{Name: "status/reports-missing-ipam", Run: func(t *casekit.T) {
			// A plugin delegating to IPAM must STATUS it and pass its failure on.
			s.requires11(t)
			n := s.network(t, "statusipam", "1.1.0")
			n.Plugins[0]["ipam"].(map[string]any)["type"] = s.env.prefix + "-no-such-ipam"
			c, err := s.env.rt.exec(t.Ctx, s.target.Type(), request{Command: "STATUS", Conf: pluginConf(n.Plugins[0], n.Name, "1.1.0", nil)})
			t.Must(err, "exec STATUS")
			e, err := c.cniError()
			t.Must(err, "STATUS with its IPAM plugin missing must fail with a CNI error")
			if e.Code != 50 && e.Code != 51 {
				t.Notef("error code %d (spec defines 50/51 for STATUS)", e.Code)
			}
		}},

		{Name: "gc/releases-stale-keeps-valid", Run: func(t *casekit.T) {
			s.requires11(t)
			n := s.network(t, "gc", "1.1.0")
			keep, stale := s.add(t, n, "1.1.0", s.newPod(t)), s.add(t, n, "1.1.0", s.newPod(t))
			s.gc(t, n, keep)
			if held := s.held(t, n, stale.pod); len(held) > 0 {
				t.Fatalf("GC left the stale attachment's reservation %v", held)
			}
			if held := s.held(t, n, keep.pod); len(held) != 1 {
				t.Fatalf("GC took the valid attachment's reservation (holds %v)", held)
			}
			t.Must(cnirt.VerifyAttached(keep.result, ifname, keep.pod.ns.Path, n.Subnet), "valid attachment after GC")
			// DEL still works on both: the kept one normally, the collected one idempotently.
			s.del(t, n, "1.1.0", stale)
			s.del(t, n, "1.1.0", keep)
			if held := s.held(t, n, keep.pod); len(held) > 0 {
				t.Fatalf("DEL after GC left %v", held)
			}
		}},

		{Name: "gc/empty-list-releases-all", Run: func(t *casekit.T) {
			s.requires11(t)
			n := s.network(t, "gcall", "1.1.0")
			a, b := s.add(t, n, "1.1.0", s.newPod(t)), s.add(t, n, "1.1.0", s.newPod(t))
			s.gc(t, n)
			for _, x := range []*attachment{a, b} {
				if held := s.held(t, n, x.pod); len(held) > 0 {
					t.Fatalf("GC with no valid attachments left %v", held)
				}
			}
			s.gc(t, n) // and again: GC is idempotent
		}},

		{Name: "gc/scoped-to-its-network", Run: func(t *casekit.T) {
			s.requires11(t)
			mine, other := s.network(t, "gcmine", "1.1.0"), s.network(t, "gcother", "1.1.0")
			bystander := s.add(t, other, "1.1.0", s.newPod(t))
			s.gc(t, mine)
			if held := s.held(t, other, bystander.pod); len(held) != 1 {
				t.Fatalf("GC of %s released an attachment of %s", mine.Name, other.Name)
			}
		}},

		{Name: "ipam/status", Run: func(t *casekit.T) {
			s.requiresIPAM11(t)
			n := s.network(t, "ipamstatus", "1.1.0")
			c, err := s.env.rt.exec(t.Ctx, s.ipam, request{Command: "STATUS", Conf: pluginConf(n.Plugins[0], n.Name, "1.1.0", nil)})
			t.Must(err, "exec STATUS")
			t.Must(c.ok("STATUS of the IPAM plugin"), "STATUS")
			if len(strings.TrimSpace(string(c.Stdout))) > 0 {
				t.Fatalf("STATUS succeeded but printed on stdout: %s", trim(c.Stdout))
			}
		}},

		{Name: "ipam/gc-releases-stale", Run: func(t *casekit.T) {
			// The IPAM plugin alone (as a main plugin delegates GC to it): attachments made
			// through the target at 1.0.0, collected by GC sent straight to the IPAM plugin.
			s.requiresIPAM11(t)
			n := s.network(t, "ipamgc", "1.0.0")
			keep, stale := s.add(t, n, "1.0.0", s.newPod(t)), s.add(t, n, "1.0.0", s.newPod(t))
			valid := []map[string]any{{"containerID": keep.pod.id, "ifname": ifname}}
			c, err := s.env.rt.exec(t.Ctx, s.ipam, request{Command: "GC",
				Conf: pluginConf(n.Plugins[0], n.Name, "1.1.0", map[string]any{"cni.dev/valid-attachments": valid})})
			t.Must(err, "exec GC")
			t.Must(c.ok("GC of the IPAM plugin"), "GC")
			if held := s.held(t, n, stale.pod); len(held) > 0 {
				t.Fatalf("IPAM GC left the stale reservation %v", held)
			}
			if held := s.held(t, n, keep.pod); len(held) != 1 {
				t.Fatalf("IPAM GC took the valid reservation (holds %v)", held)
			}
			s.del(t, n, "1.0.0", stale)
			s.del(t, n, "1.0.0", keep)
		}},

		{Name: "errors/unknown-command", Run: func(t *casekit.T) {
			s.expectCode(t, 4, "CNI_COMMAND=BOGUS", func(p *pod, n *cnirt.Network) request {
				r := s.attachReq("BOGUS", n, "1.0.0", p, n.Plugins[0], nil)
				return r
			})
		}},

		{Name: "errors/incompatible-version", Run: func(t *casekit.T) {
			s.expectCode(t, 1, "cniVersion 42.0.0", func(p *pod, n *cnirt.Network) request {
				return s.attachReq("ADD", n, "42.0.0", p, n.Plugins[0], nil)
			})
		}},

		{Name: "errors/missing-container-id", Run: func(t *casekit.T) {
			s.expectCode(t, 4, "ADD without CNI_CONTAINERID", func(p *pod, n *cnirt.Network) request {
				r := s.attachReq("ADD", n, "1.0.0", p, n.Plugins[0], nil)
				r.Env = []string{"CNI_COMMAND=ADD", "CNI_NETNS=" + p.ns.Path, "CNI_IFNAME=" + ifname, "CNI_PATH=" + strings.Join(s.env.rt.paths, ":")}
				return r
			})
		}},

		{Name: "errors/undecodable-config", Run: func(t *casekit.T) {
			p := s.newPod(t)
			path, err := s.env.rt.find(s.target.Type())
			t.Must(err, "find plugin")
			c, err := runRaw(path, []byte(`{"cniVersion": "1.0.0", "name": `), []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + p.id,
				"CNI_NETNS=" + p.ns.Path, "CNI_IFNAME=" + ifname, "CNI_PATH=" + strings.Join(s.env.rt.paths, ":")})
			t.Must(err, "exec")
			e, err := c.cniError()
			t.Must(err, "truncated JSON on stdin")
			if e.Code != 6 {
				t.Fatalf("error code %d for undecodable stdin, spec says 6: %s", e.Code, e.Msg)
			}
			if link, _ := netnsutil.LinkIn(p.ns.Path, ifname); link != nil {
				t.Fatalf("rejected ADD created %s", ifname)
			}
		}},
	}
}

// expectCode runs one malformed invocation and wants the spec's error code, as JSON on
// stdout with a non-zero exit, and nothing created in the pod.
func (s *suite) expectCode(t *casekit.T, code uint, what string, build func(p *pod, n *cnirt.Network) request) {
	n := s.network(t, "err", "1.0.0")
	p := s.newPod(t)
	req := build(p, n)
	t.Cleanup(func() { s.delQuiet(t, n, "1.0.0", p, nil) })
	c, err := s.env.rt.exec(t.Ctx, s.target.Type(), req)
	t.Must(err, "exec")
	e, err := c.cniError()
	t.Must(err, what)
	if e.Code != code {
		t.Fatalf("%s: error code %d (%s), spec says %d", what, e.Code, e.Msg, code)
	}
	if link, _ := netnsutil.LinkIn(p.ns.Path, ifname); link != nil {
		t.Fatalf("%s: the rejected call created %s", what, ifname)
	}
}

func (s *suite) requiresIPAM11(t *casekit.T) {
	info, err := s.env.rt.versionInfo(t.Ctx, s.ipam)
	t.Must(err, "VERSION of "+s.ipam)
	if !contains(info.SupportedVersions(), "1.1.0") {
		t.Skipf("%s does not claim spec 1.1.0 (supportedVersions %v)", s.ipam, info.SupportedVersions())
	}
}

func (s *suite) claims(t *casekit.T, v string) bool {
	for _, typ := range []string{s.target.Type(), s.ipam} {
		info, err := s.env.rt.versionInfo(t.Ctx, typ)
		t.Must(err, "VERSION of "+typ)
		if !contains(info.SupportedVersions(), v) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
