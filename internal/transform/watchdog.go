package transform

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// watchdog ends an instance's call that runs past the budget: it raises a
// flag that the checks addStopChecks compiled into the module ask about
// (through hostSandboxCheck) every few thousand loop iterations or calls.
// One timer serves every call of the instance.
type watchdog struct {
	budget time.Duration // 0: calls are not limited
	timer  *time.Timer
	stop   atomic.Bool
	mu     struct {
		sync.Mutex
		armed    bool
		deadline time.Time
	}
}

// arm starts the budget of a call.
func (w *watchdog) arm() {
	if w.budget <= 0 {
		return
	}
	w.mu.Lock()
	w.mu.armed = true
	w.mu.deadline = time.Now().Add(w.budget)
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(w.budget, w.fire)
	} else {
		w.timer.Reset(w.budget)
	}
}

// fire runs on the timer's goroutine. A timer left over from an earlier
// call finds its deadline in the future and does nothing.
func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.armed && !time.Now().Before(w.mu.deadline) {
		w.stop.Store(true)
	}
}

// stopNow makes the module trap at its next check, whatever the budget.
func (w *watchdog) stopNow() { w.stop.Store(true) }

// disarm ends a call's budget and says whether it ran out (then the call
// counts as stopped even if it finished as the budget ran out: the flag
// stays up and the instance is not used again).
func (w *watchdog) disarm() (expired bool) {
	if w.budget <= 0 {
		return w.stop.Load()
	}
	w.timer.Stop()
	w.mu.Lock()
	w.mu.armed = false
	w.mu.Unlock()
	return w.stop.Load()
}

// close stops the timer for good.
func (w *watchdog) close() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// hostSandboxCheck is weir_sandbox.check: non-zero once the running
// call's budget is spent. Being a call out to Go, it also lets the Go
// scheduler preempt a module that runs for long.
func hostSandboxCheck(ctx context.Context, _ api.Module, stack []uint64) {
	stack[0] = 0
	if i := instanceFrom(ctx); i != nil && i.wd != nil && i.wd.stop.Load() {
		stack[0] = 1
	}
}
