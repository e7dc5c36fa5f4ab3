// Command natsserver runs an embedded NATS server with JetStream file storage
// on loopback, as a reference for benchmarks. Sync settings are JetStream's
// defaults (an fsync every 2 minutes, not per write) unless -sync-always is
// given.
//
// Usage: natsserver -port 14222 [-store-dir DIR] [-sync-always]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	port := flag.Int("port", 14222, "client port on 127.0.0.1")
	storeDir := flag.String("store-dir", "", "JetStream store directory (empty: a new temp dir, removed on exit)")
	syncAlways := flag.Bool("sync-always", false, "fsync every write (JetStream sync_interval: always)")
	flag.Parse()
	if err := run(*port, *storeDir, *syncAlways); err != nil {
		fmt.Fprintf(os.Stderr, "natsserver: %v\n", err)
		os.Exit(1)
	}
}

func run(port int, storeDir string, syncAlways bool) error {
	if storeDir == "" {
		d, err := os.MkdirTemp("", "natsserver-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		storeDir = d
	}
	// No HTTP monitoring port, no signal handling of its own: this
	// program owns the process's signals.
	opts := &server.Options{
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		SyncAlways: syncAlways,
		NoSigs:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("not ready after 10s")
	}
	fmt.Printf("nats listening on %s (store %s, sync-always=%v)\n", s.ClientURL(), storeDir, syncAlways)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
