//go:build unix

package chaos

import (
	"os"
	"syscall"
)

// stopProcess freezes p (SIGSTOP): it keeps its sockets and files but does
// nothing, as a long GC pause or a VM stall would look from outside.
func stopProcess(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// continueProcess undoes stopProcess (SIGCONT).
func continueProcess(p *os.Process) error { return p.Signal(syscall.SIGCONT) }

// pauseSupported says whether Cluster.Pause can work here.
const pauseSupported = true
