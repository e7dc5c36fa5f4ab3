//go:build !unix

package chaos

import (
	"errors"
	"os"
)

var errNoStop = errors.New("pausing a process needs SIGSTOP, which this platform lacks")

func stopProcess(*os.Process) error     { return errNoStop }
func continueProcess(*os.Process) error { return errNoStop }

// pauseSupported says whether Cluster.Pause can work here.
const pauseSupported = false
