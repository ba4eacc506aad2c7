// Package report writes the machine-readable outcome of conformance cases:
// one JSON object per line, so suites written in Go and shell can share one summary.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Record is one line of the summary stream.
type Record struct {
	Suite  string `json:"suite"`
	Case   string `json:"case"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Millis int64  `json:"ms"`
}

// Writer emits records as JSON lines and echoes a human line to stderr.
type Writer struct {
	mu  sync.Mutex
	out io.Writer
}

func NewWriter(out io.Writer) *Writer { return &Writer{out: out} }

// Open appends to path, or writes to stdout when path is "" or "-".
func Open(path string) (*Writer, func() error, error) {
	if path == "" || path == "-" {
		return NewWriter(os.Stdout), func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return NewWriter(f), f.Close, nil
}

func (w *Writer) Emit(r Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line, _ := json.Marshal(r)
	fmt.Fprintf(w.out, "%s\n", line)
	note := ""
	if r.Reason != "" {
		note = ": " + r.Reason
	}
	fmt.Fprintf(os.Stderr, "  %-4s %s %s (%d ms)%s\n", label(r.Status), r.Suite, r.Case, r.Millis, note)
}

func label(status string) string {
	switch status {
	case Pass:
		return "ok"
	case Fail:
		return "FAIL"
	default:
		return "skip"
	}
}
