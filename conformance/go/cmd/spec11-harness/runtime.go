package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// runtime11 is a minimal CNI 1.1.0 runtime: it negotiates a version from
// "cniVersions", executes plugins itself (libcni 1.1.2 predates GC and STATUS)
// and keeps every plugin's raw output so cases can hold it to the text of the spec.
type runtime11 struct {
	paths []string
}

// RuntimeVersions is what this runtime speaks, oldest first.
var RuntimeVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// call is one plugin execution and everything it produced.
type call struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// request is one plugin invocation: the verb, the attachment (empty for STATUS and GC)
// and the plugin configuration already derived from the list.
type request struct {
	Command     string
	ContainerID string
	NetNS       string
	IfName      string
	Args        string
	Conf        map[string]any
	// Env replaces the CNI_* variables built from the fields above (for malformed calls).
	Env []string
}

func (r *runtime11) find(typ string) (string, error) {
	return invoke.FindInPath(typ, r.paths)
}

func (r *runtime11) exec(ctx context.Context, typ string, req request) (*call, error) {
	path, err := r.find(typ)
	if err != nil {
		return nil, err
	}
	stdin, err := json.Marshal(req.Conf)
	if err != nil {
		return nil, err
	}
	env := req.Env
	if env == nil {
		env = []string{"CNI_COMMAND=" + req.Command, "CNI_PATH=" + strings.Join(r.paths, ":")}
		for k, v := range map[string]string{"CNI_CONTAINERID": req.ContainerID, "CNI_NETNS": req.NetNS, "CNI_IFNAME": req.IfName, "CNI_ARGS": req.Args} {
			if v != "" {
				env = append(env, k+"="+v)
			}
		}
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	c := &call{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		c.ExitCode = exitErr.ExitCode()
	} else if err != nil {
		return nil, err
	}
	return c, nil
}

// baseEnv is the runtime's own environment minus any CNI_* it may have inherited.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CNI_") {
			env = append(env, kv)
		}
	}
	return env
}

// cniError parses a failed call's stdout as the spec's error object.
func (c *call) cniError() (*types.Error, error) {
	if c.ExitCode == 0 {
		return nil, fmt.Errorf("exit code 0, expected a failure")
	}
	var e types.Error
	if err := json.Unmarshal(c.Stdout, &e); err != nil {
		return nil, fmt.Errorf("exit %d without a JSON error on stdout (stdout %q, stderr %q)", c.ExitCode, trim(c.Stdout), trim(c.Stderr))
	}
	if e.Code == 0 || e.Msg == "" {
		return nil, fmt.Errorf("error object lacks code or msg: %s", trim(c.Stdout))
	}
	return &e, nil
}

// ok fails unless the call succeeded.
func (c *call) ok(what string) error {
	if c.ExitCode != 0 {
		return fmt.Errorf("%s: exit %d: %s %s", what, c.ExitCode, trim(c.Stdout), trim(c.Stderr))
	}
	return nil
}

// versionInfo runs VERSION and decodes it with libcni's decoder.
func (r *runtime11) versionInfo(ctx context.Context, typ string) (version.PluginInfo, error) {
	c, err := r.exec(ctx, typ, request{Command: "VERSION", Conf: map[string]any{"cniVersion": "1.1.0"}})
	if err != nil {
		return nil, err
	}
	if err := c.ok("VERSION"); err != nil {
		return nil, err
	}
	return (&version.PluginDecoder{}).Decode(c.Stdout)
}

// negotiate picks, per spec 1.1.0, the highest version listed in "cniVersions" that
// this runtime speaks; we also require every plugin of the list to claim it, so the
// choice is one the chain can serve (falling back to "cniVersion" without the list).
func (r *runtime11) negotiate(ctx context.Context, list map[string]any, pluginTypes []string) (string, error) {
	var candidates []string
	if raw, ok := list["cniVersions"].([]any); ok {
		for _, v := range raw {
			if s, ok := v.(string); ok {
				candidates = append(candidates, s)
			}
		}
	}
	if len(candidates) == 0 {
		s, _ := list["cniVersion"].(string)
		return s, nil
	}
	supported := map[string]bool{}
	for _, v := range RuntimeVersions {
		supported[v] = true
	}
	for _, typ := range pluginTypes {
		info, err := r.versionInfo(ctx, typ)
		if err != nil {
			return "", fmt.Errorf("VERSION of %s: %w", typ, err)
		}
		claimed := map[string]bool{}
		for _, v := range info.SupportedVersions() {
			claimed[v] = true
		}
		for v := range supported {
			if !claimed[v] {
				delete(supported, v)
			}
		}
	}
	best := ""
	for _, v := range candidates {
		if !supported[v] {
			continue
		}
		if best == "" {
			best = v
		} else if gte, err := version.GreaterThanOrEqualTo(v, best); err == nil && gte {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("no version in cniVersions %v is spoken by the runtime and every plugin", candidates)
	}
	return best, nil
}

// pluginConf derives what one plugin of a list gets on stdin.
func pluginConf(plugin map[string]any, name, cniVersion string, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range plugin {
		out[k] = v
	}
	out["name"], out["cniVersion"] = name, cniVersion
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func pluginTypeOf(p map[string]any) string {
	s, _ := p["type"].(string)
	return s
}

// runRaw executes a plugin with exact stdin bytes (for malformed input).
func runRaw(path string, stdin []byte, env []string) (*call, error) {
	cmd := exec.Command(path)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	c := &call{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		c.ExitCode = exitErr.ExitCode()
	} else if err != nil {
		return nil, err
	}
	return c, nil
}
