// spec11-harness holds a CNI plugin to the parts of spec 1.1.0 that Debian's libcni
// 1.1.2 cannot drive: STATUS, GC with "cni.dev/valid-attachments", and version
// negotiation through "cniVersions" in a configuration list. It also checks the
// error conventions every version shares. One JSON line per case.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"weftconformance/internal/casekit"
	"weftconformance/internal/cnirt"
	"weftconformance/internal/netnsutil"
	"weftconformance/internal/report"
)

func main() {
	cniPath := flag.String("cni-path", envOr("CNI_PATH", "/usr/lib/cni"), "plugin directories (colon separated)")
	targets := flag.String("targets", "bridge;ptp", "plugins under test (see libcni-harness -h), separated by ';'")
	ipams := flag.String("ipam", "host-local", "IPAM plugins to pair with each target (comma separated; host-local compatible stores)")
	prefix := flag.String("prefix", "wk", "prefix of every namespace, link, network and temp dir the suite makes")
	subnetBase := flag.String("subnet-base", "10.248", "first two octets of the /16 the suite's /24s come from")
	out := flag.String("out", "-", "JSON-lines summary file (appended), - for stdout")
	filter := flag.String("run", "", "only cases whose suite/case name matches this regexp")
	caseTimeout := flag.Duration("case-timeout", 30*time.Second, "deadline of one case")
	flag.Parse()

	if os.Geteuid() != 0 {
		fatal(fmt.Errorf("needs root: it makes network namespaces"))
	}
	w, closeOut, err := report.Open(*out)
	if err != nil {
		fatal(err)
	}
	tmp, err := os.MkdirTemp("", *prefix+"-spec11-")
	if err != nil {
		fatal(err)
	}
	var re *regexp.Regexp
	if *filter != "" {
		if re, err = regexp.Compile(*filter); err != nil {
			fatal(err)
		}
	}
	env := &env{rt: &runtime11{paths: filepath.SplitList(*cniPath)}, prefix: *prefix, subnetBase: *subnetBase, tmp: tmp, runID: netnsutil.RandomName("")[:6]}
	ctx, stop := casekit.Interruptible()
	defer stop()
	var total casekit.Counts
	var failure error
	for _, spec := range splitNonEmpty(*targets, ";") {
		target, err := cnirt.ParseTarget(spec)
		if err != nil {
			failure = err
			break
		}
		for _, ipam := range splitNonEmpty(*ipams, ",") {
			s := &suite{env: env, target: target, ipam: ipam}
			c := casekit.Run(ctx, w, fmt.Sprintf("spec-1.1.0/%s+%s", target.Name, ipam), s.cases(), re, *caseTimeout)
			total.Pass, total.Fail, total.Skip = total.Pass+c.Pass, total.Fail+c.Fail, total.Skip+c.Skip
		}
	}
	env.close()
	_ = closeOut()
	if failure != nil {
		fatal(failure)
	}
	fmt.Fprintf(os.Stderr, "spec11-harness: %d passed, %d failed, %d skipped\n", total.Pass, total.Fail, total.Skip)
	if total.Fail > 0 {
		os.Exit(1)
	}
}

// env is what every suite of one run shares.
type env struct {
	rt         *runtime11
	prefix     string
	subnetBase string
	tmp        string
	runID      string
	subnets    int
	bridges    []string
}

func (e *env) nextSubnet() *net.IPNet {
	e.subnets++
	_, n, err := net.ParseCIDR(fmt.Sprintf("%s.%d.0/24", e.subnetBase, e.subnets))
	if err != nil || e.subnets > 255 {
		panic(fmt.Sprintf("subnet base %s exhausted or invalid", e.subnetBase))
	}
	return n
}

func (e *env) newBridgeName() string {
	name := fmt.Sprintf("%sc%s%02x", e.prefix, e.runID, len(e.bridges))
	e.bridges = append(e.bridges, name)
	return name
}

func (e *env) close() {
	for _, br := range e.bridges {
		_ = exec.Command("ip", "link", "del", br).Run()
	}
	_ = os.RemoveAll(e.tmp)
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
	fmt.Fprintf(os.Stderr, "spec11-harness: %v\n", err)
	os.Exit(2)
}
