// Command kfakeserver runs franz-go's kfake, an in-process Kafka-protocol
// test server, as a standalone reference broker for benchmarks. With
// -data-dir it persists segments and indexes; with -sync it also fsyncs each
// produced batch, which is the closest kfake comes to Weir's default of
// fsync before ack.
//
// Usage: kfakeserver -port 19092 [-data-dir DIR [-sync]]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 19092, "Kafka port on 127.0.0.1")
	dataDir := flag.String("data-dir", "", "persist to this directory (empty: in memory)")
	sync := flag.Bool("sync", false, "fsync every produced batch (needs -data-dir)")
	flag.Parse()
	if *sync && *dataDir == "" {
		fmt.Fprintln(os.Stderr, "kfakeserver: -sync needs -data-dir")
		os.Exit(2)
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(1),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *sync {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kfakeserver: start: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("kfake listening on %v (data-dir=%q sync=%v)\n", c.ListenAddrs(), *dataDir, *sync)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	c.Close()
}
