package chaos

import "syscall"

// childAttr makes the kernel kill a node if the harness dies (a test
// timeout panics without running cleanups), so no broker outlives a run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
