// Package netnsutil makes scratch network namespaces (named with the suite's prefix, so
// they never collide with anyone else's) and looks inside them with netlink.
package netnsutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Netns is a named namespace made with iproute2; Path is what CNI_NETNS takes.
type Netns struct {
	Name string
	Path string
}

// RandomName returns prefix plus hex, at most 15 bytes (safe for netns and link names).
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

func New(prefix string) (*Netns, error) {
	name := RandomName(prefix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &Netns{Name: name, Path: "/var/run/netns/" + name}
	if _, err := n.Exec("ip", "link", "set", "lo", "up"); err != nil {
		n.Remove()
		return nil, err
	}
	return n, nil
}

// Remove deletes the namespace; it is fine to call it twice.
func (n *Netns) Remove() {
	if _, err := os.Stat(n.Path); err == nil {
		_ = exec.Command("ip", "netns", "del", n.Name).Run()
	}
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *Netns) Exec(cmd string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name, cmd}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %v: %s", n.Name, cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Ping sends one echo request from inside the namespace.
func (n *Netns) Ping(addr net.IP) error {
	_, err := n.Exec("ping", "-c", "1", "-W", "2", addr.String())
	return err
}

// Link is what the harness wants to know about an interface.
type Link struct {
	Name  string
	Kind  string
	Up    bool
	MAC   string
	MTU   int
	Addrs []net.IPNet
}

// LinkIn inspects ifname inside the namespace at nsPath; nil when it does not exist.
func LinkIn(nsPath, ifname string) (*Link, error) {
	var found *Link
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		l, err := inspect(ifname)
		found = l
		return err
	})
	return found, err
}

// HostLink inspects ifname in the harness's own namespace; nil when it does not exist.
func HostLink(ifname string) (*Link, error) { return inspect(ifname) }

func inspect(ifname string) (*Link, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		if _, missing := err.(netlink.LinkNotFoundError); missing {
			return nil, nil
		}
		return nil, err
	}
	attrs := link.Attrs()
	l := &Link{Name: attrs.Name, Kind: link.Type(), Up: attrs.Flags&net.FlagUp != 0, MAC: attrs.HardwareAddr.String(), MTU: attrs.MTU}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		l.Addrs = append(l.Addrs, *a.IPNet)
	}
	return l, nil
}

// HasAddr reports whether the link carries exactly this address and prefix length.
func (l *Link) HasAddr(want net.IPNet) bool {
	for _, a := range l.Addrs {
		if a.IP.Equal(want.IP) && a.Mask.String() == want.Mask.String() {
			return true
		}
	}
	return false
}

// RoutesIn lists the routes (all families, main table) inside the namespace.
func RoutesIn(nsPath string) ([]netlink.Route, error) {
	var routes []netlink.Route
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		routes, err = netlink.RouteList(nil, netlink.FAMILY_ALL)
		return err
	})
	return routes, err
}

// HasRoute reports whether a route to dst (and via gw, when gw is set) exists.
func HasRoute(routes []netlink.Route, dst net.IPNet, gw net.IP) bool {
	for _, r := range routes {
		var rdst string
		if r.Dst == nil {
			if dst.IP.To4() != nil {
				rdst = "0.0.0.0/0"
			} else {
				rdst = "::/0"
			}
		} else {
			rdst = r.Dst.String()
		}
		if rdst != dst.String() {
			continue
		}
		if gw == nil || gw.Equal(r.Gw) {
			return true
		}
	}
	return false
}
