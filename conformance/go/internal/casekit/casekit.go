// Package casekit is a tiny case runner: a table of named cases, each able to fail,
// skip with a reason, and register clean-ups that run even when it fails.
package casekit

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"weftconformance/internal/report"
)

// Case is one row of a suite's case table.
type Case struct {
	Name string
	Run  func(t *T)
}

// T is what a case body gets: a context with a deadline plus fail/skip/cleanup.
type T struct {
	Ctx      context.Context
	name     string
	cleanups []func()
	notes    []string
}

type outcome struct {
	status string
	reason string
}

func (t *T) Name() string { return t.name }

// Fatalf ends the case as failed.
func (t *T) Fatalf(format string, args ...any) {
	panic(outcome{report.Fail, fmt.Sprintf(format, args...)})
}

// Skipf ends the case as skipped; the reason is part of the summary.
func (t *T) Skipf(format string, args ...any) {
	panic(outcome{report.Skip, fmt.Sprintf(format, args...)})
}

// Must fails the case when err is not nil.
func (t *T) Must(err error, what string) {
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Notef attaches a remark to a passing case (e.g. a tolerated known bug of a
// reference plugin); it shows up as the case's reason in the summary.
func (t *T) Notef(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// Cleanup registers fn to run after the case, last registered first.
func (t *T) Cleanup(fn func()) { t.cleanups = append(t.cleanups, fn) }

// Logf prints diagnostics to stderr (never into the summary stream).
func (t *T) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "       [%s] %s\n", t.name, fmt.Sprintf(format, args...))
}

// Interruptible returns a context that ends on SIGINT or SIGTERM, so a harness can
// stop between cases and still remove what it made.
func Interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Counts is what a suite run adds up to.
type Counts struct{ Pass, Fail, Skip int }

// Run executes the cases in order and emits one record per case; filter, when set,
// is matched against "suite/case". Once ctx is done (the run was interrupted) the
// remaining cases are skipped, and a running one fails with its clean-ups done.
func Run(ctx context.Context, w *report.Writer, suite string, cases []Case, filter *regexp.Regexp, timeout time.Duration) Counts {
	var c Counts
	for _, cs := range cases {
		if filter != nil && !filter.MatchString(suite+"/"+cs.Name) {
			continue
		}
		start := time.Now()
		var o outcome
		if ctx.Err() != nil {
			o = outcome{report.Skip, "run interrupted"}
		} else {
			o = runOne(ctx, cs, timeout)
		}
		w.Emit(report.Record{Suite: suite, Case: cs.Name, Status: o.status, Reason: o.reason, Millis: time.Since(start).Milliseconds()})
		switch o.status {
		case report.Pass:
			c.Pass++
		case report.Fail:
			c.Fail++
		default:
			c.Skip++
		}
	}
	return c
}

func runOne(parent context.Context, cs Case, timeout time.Duration) (o outcome) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	t := &T{Ctx: ctx, name: cs.Name}
	defer func() {
		// Clean-ups run whatever happened; a failing clean-up fails an otherwise passing case.
		for i := len(t.cleanups) - 1; i >= 0; i-- {
			func() {
				defer func() {
					if r := recover(); r != nil && o.status == report.Pass {
						o = toOutcome(r)
					}
				}()
				t.cleanups[i]()
			}()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			o = toOutcome(r)
		}
	}()
	cs.Run(t)
	return outcome{status: report.Pass, reason: strings.Join(t.notes, "; ")}
}

func toOutcome(r any) outcome {
	if o, ok := r.(outcome); ok {
		return o
	}
	return outcome{report.Fail, fmt.Sprintf("panic: %v\n%s", r, debug.Stack())}
}
