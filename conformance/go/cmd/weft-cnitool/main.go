// weft-cnitool is a cnitool-compatible driver on Debian's libcni 1.1.2: the same verbs
// (add, check, del NET NETNS), the same environment (NETCONFPATH, CNI_PATH, CNI_ARGS,
// CAP_ARGS, CNI_IFNAME), the same container ID derived from the netns path, and the
// same output (ADD's result as indented JSON on stdout; errors on stderr, exit 1).
// One addition: CNI_CACHE_DIR, when set, replaces libcni's result cache /var/lib/cni.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

const defaultNetDir = "/etc/cni/net.d"

func main() {
	if len(os.Args) < 4 {
		usage()
	}
	verb, network, netnsArg := os.Args[1], os.Args[2], os.Args[3]
	if verb != "add" && verb != "check" && verb != "del" {
		usage()
	}

	netDir := os.Getenv("NETCONFPATH")
	if netDir == "" {
		netDir = defaultNetDir
	}
	// Loads NET.conflist, or falls back to a single-plugin .conf/.json wrapped in a list.
	list, err := libcni.LoadConfList(netDir, network)
	exitOn(err)

	var capArgs map[string]interface{}
	if raw := os.Getenv("CAP_ARGS"); raw != "" {
		exitOn(json.Unmarshal([]byte(raw), &capArgs))
	}
	var cniArgs [][2]string
	if raw := os.Getenv("CNI_ARGS"); raw != "" {
		cniArgs, err = parseCNIArgs(raw)
		exitOn(err)
	}
	ifName, set := os.LookupEnv("CNI_IFNAME")
	if !set {
		ifName = "eth0"
	}
	netns, err := filepath.Abs(netnsArg)
	exitOn(err)

	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	rt := &libcni.RuntimeConf{
		ContainerID:    containerID(netns),
		NetNS:          netns,
		IfName:         ifName,
		Args:           cniArgs,
		CapabilityArgs: capArgs,
	}

	ctx := context.Background()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if result != nil {
			_ = result.Print()
		}
		exitOn(err)
	case "check":
		exitOn(cni.CheckNetworkList(ctx, list, rt))
	case "del":
		exitOn(cni.DelNetworkList(ctx, list, rt))
	}
	os.Exit(0)
}

// containerID is stable per namespace path, as cnitool's: "cnitool-" and the first
// ten bytes of the path's SHA-512 in hex, so add and del of one netns match up.
func containerID(netnsPath string) string {
	sum := sha512.Sum512([]byte(netnsPath))
	return fmt.Sprintf("cnitool-%x", sum[:10])
}

// parseCNIArgs reads "K1=V1;K2=V2"; every pair needs a non-empty key and value.
func parseCNIArgs(raw string) ([][2]string, error) {
	var out [][2]string
	for _, pair := range strings.Split(raw, ";") {
		kv := strings.Split(pair, "=")
		if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
			return nil, fmt.Errorf("invalid CNI_ARGS pair %q", pair)
		}
		out = append(out, [2]string{kv[0], kv[1]})
	}
	return out, nil
}

func usage() {
	exe := filepath.Base(os.Args[0])
	fmt.Fprintf(os.Stderr, "%s: Add, check, or remove network interfaces from a network namespace\n", exe)
	fmt.Fprintf(os.Stderr, "  %s add   <net> <netns>\n", exe)
	fmt.Fprintf(os.Stderr, "  %s check <net> <netns>\n", exe)
	fmt.Fprintf(os.Stderr, "  %s del   <net> <netns>\n", exe)
	os.Exit(1)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s\n", err)
		os.Exit(1)
	}
}
