// libcni-harness drives a CNI plugin through Debian's libcni 1.1.2, the library
// containerd, CRI-O and podman embed, for every spec version libcni knows
// (0.3.0 .. 1.0.0), alone and chained with the reference meta plugins, and checks
// what the plugin claims against the real namespace. One JSON line per case.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"

	"weftconformance/internal/casekit"
	"weftconformance/internal/cnirt"
	"weftconformance/internal/netnsutil"
	"weftconformance/internal/report"
)

type options struct {
	cniPath       string
	targets       string
	ipams         string
	versions      string
	chainVersions string
	chain         string
	prefix        string
	subnetBase    string
	out           string
	filter        string
	caseTimeout   time.Duration
	strict        bool
}

func main() {
	var o options
	flag.StringVar(&o.cniPath, "cni-path", envOr("CNI_PATH", "/usr/lib/cni"), "plugin directories (colon separated)")
	flag.StringVar(&o.targets, "targets", "bridge;ptp", "plugins under test: builtin names (bridge, ptp, weft) or NAME='{json without ipam}', separated by ';'")
	flag.StringVar(&o.ipams, "ipam", "host-local", "IPAM plugins to pair with each target (comma separated; host-local compatible stores)")
	flag.StringVar(&o.versions, "versions", strings.Join(cnirt.SpecVersions, ","), "spec versions for the single-plugin cases")
	flag.StringVar(&o.chainVersions, "chain-versions", "0.4.0,1.0.0", "spec versions for the chained cases")
	flag.StringVar(&o.chain, "chain", "portmap,bandwidth,tuning,firewall", "reference meta plugins to chain after the target (empty: none)")
	flag.StringVar(&o.prefix, "prefix", "wk", "prefix of every namespace, link, network and temp dir the suite makes")
	flag.StringVar(&o.subnetBase, "subnet-base", "10.249", "first two octets of the /16 the suite's /24s come from")
	flag.StringVar(&o.out, "out", "-", "JSON-lines summary file (appended), - for stdout")
	flag.StringVar(&o.filter, "run", "", "only cases whose suite/case name matches this regexp")
	flag.DurationVar(&o.caseTimeout, "case-timeout", 30*time.Second, "deadline of one case")
	flag.BoolVar(&o.strict, "strict", false, "also hold the plugin to weft's contract where it goes beyond the spec (a failed ADD leaves nothing behind)")
	flag.Parse()

	w, closeOut, err := report.Open(o.out)
	if err != nil {
		fatal(err)
	}
	h, err := newHarness(o, w)
	if err != nil {
		fatal(err)
	}
	ctx, stop := casekit.Interruptible()
	total, err := h.runAll(ctx)
	stop()
	h.close()
	_ = closeOut()
	if err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "libcni-harness: %d passed, %d failed, %d skipped\n", total.Pass, total.Fail, total.Skip)
	if total.Fail > 0 {
		os.Exit(1)
	}
}

func (h *harness) runAll(ctx context.Context) (casekit.Counts, error) {
	o, w := h.o, h.w

	var total casekit.Counts
	for _, spec := range splitNonEmpty(o.targets, ";") {
		target, err := cnirt.ParseTarget(spec)
		if err != nil {
			return total, err
		}
		for _, ipam := range splitNonEmpty(o.ipams, ",") {
			s := &suite{h: h, target: target, ipam: ipam}
			name := fmt.Sprintf("libcni/%s+%s", target.Name, ipam)
			c := casekit.Run(ctx, w, name, s.cases(splitNonEmpty(o.versions, ",")), h.filter, o.caseTimeout)
			total = add(total, c)
			if chained := splitNonEmpty(o.chain, ","); len(chained) > 0 {
				c = casekit.Run(ctx, w, name+"/chained", s.chainedCases(splitNonEmpty(o.chainVersions, ","), chained), h.filter, o.caseTimeout)
				total = add(total, c)
			}
		}
	}
	return total, nil
}

// harness holds what all suites share: libcni with its own cache dir, a scratch
// directory for IPAM stores, the scratch bridges, and the subnet allocator.
type harness struct {
	o       options
	w       *report.Writer
	cni     *libcni.CNIConfig
	tmp     string
	runID   string
	bridges []string
	subnets int
	filter  *regexp.Regexp
}

func newHarness(o options, w *report.Writer) (*harness, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root: it makes network namespaces")
	}
	tmp, err := os.MkdirTemp("", o.prefix+"-libcni-")
	if err != nil {
		return nil, err
	}
	h := &harness{o: o, w: w, tmp: tmp, runID: netnsutil.RandomName("")[:6]}
	// A private cache dir: nothing lands in the host's /var/lib/cni/results.
	h.cni = libcni.NewCNIConfigWithCacheDir(filepath.SplitList(o.cniPath), filepath.Join(tmp, "cache"), nil)
	if o.filter != "" {
		if h.filter, err = regexp.Compile(o.filter); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (h *harness) close() {
	for _, br := range h.bridges {
		_ = exec.Command("ip", "link", "del", br).Run() // made by the bridge plugin, if it ran
	}
	_ = os.RemoveAll(h.tmp)
}

// nextSubnet hands out a fresh /24 per network so networks never share addresses.
func (h *harness) nextSubnet() *net.IPNet {
	h.subnets++
	_, n, err := net.ParseCIDR(fmt.Sprintf("%s.%d.0/24", h.o.subnetBase, h.subnets))
	if err != nil || h.subnets > 255 {
		panic(fmt.Sprintf("subnet base %s exhausted or invalid", h.o.subnetBase))
	}
	return n
}

// newBridgeName names a scratch bridge and remembers it for clean-up.
func (h *harness) newBridgeName() string {
	name := fmt.Sprintf("%sb%s%02x", h.o.prefix, h.runID, len(h.bridges))
	h.bridges = append(h.bridges, name)
	return name
}

func add(a, b casekit.Counts) casekit.Counts {
	return casekit.Counts{Pass: a.Pass + b.Pass, Fail: a.Fail + b.Fail, Skip: a.Skip + b.Skip}
}

func splitNonEmpty(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "libcni-harness: %v\n", err)
	os.Exit(2)
}
