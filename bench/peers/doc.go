// Package peers holds the reference servers and clients that
// scripts/bench-compare.sh measures Weir against: franz-go's kfake with disk
// persistence and fsync per batch, and an embedded NATS JetStream server with
// its JetStream load generator. It is a separate module so that the main
// module never depends on them.
package peers
