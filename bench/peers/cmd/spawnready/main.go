// Command spawnready starts a server in the background and measures the
// time from spawning it to its first sign of readiness: an HTTP 200 from a
// URL (-http) or an accepted TCP connection (-tcp), polled every
// millisecond. It prints "PID MILLISECONDS" and exits, leaving the server
// running; the caller stops it by PID.
//
// Usage: spawnready (-http URL | -tcp ADDR) [-log FILE] [-timeout 10s] -- CMD ARGS...
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

func main() {
	url := flag.String("http", "", "ready when GET URL answers 200")
	addr := flag.String("tcp", "", "ready when ADDR accepts a TCP connection")
	logFile := flag.String("log", "", "file for the server's stdout and stderr (default: discard)")
	timeout := flag.Duration("timeout", 10*time.Second, "give up after this long")
	flag.Parse()
	if err := run(*url, *addr, *logFile, *timeout, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "spawnready: %v\n", err)
		os.Exit(1)
	}
}

func run(url, addr, logFile string, timeout time.Duration, args []string) error {
	if len(args) == 0 || (url == "") == (addr == "") {
		return errors.New("need a command and exactly one of -http and -tcp")
	}
	cmd := exec.Command(args[0], args[1:]...)
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	client := &http.Client{Timeout: 100 * time.Millisecond}
	ready := func() bool {
		if url != "" {
			resp, err := client.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}

	exited := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", args[0], err)
	}
	go func() { exited <- cmd.Wait() }()
	for !ready() {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before it was ready: %v", args[0], err)
		default:
		}
		if time.Since(start) > timeout {
			_ = cmd.Process.Kill()
			return fmt.Errorf("%s not ready after %v", args[0], timeout)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	fmt.Printf("%d %.3f\n", cmd.Process.Pid, float64(elapsed.Microseconds())/1000)
	return nil
}
