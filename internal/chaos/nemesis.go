package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// FaultKind names a fault the nemesis can inject.
type FaultKind string

const (
	FaultKillLeader     FaultKind = "kill-partition-leader"
	FaultKillController FaultKind = "kill-controller"
	FaultPause          FaultKind = "pause"
	FaultPartition      FaultKind = "partition"
	FaultOneWay         FaultKind = "one-way-partition"
	FaultSlow           FaultKind = "slow-link"
	FaultTornTail       FaultKind = "torn-tail"
	// FaultKillAll kills every node at once; a run injects it exactly once.
	FaultKillAll FaultKind = "kill-all"
)

// RegularFaults are the kinds a run cycles through, besides FaultKillAll.
func RegularFaults() []FaultKind {
	kinds := []FaultKind{FaultKillLeader, FaultKillController, FaultPause, FaultPartition,
		FaultOneWay, FaultSlow, FaultTornTail}
	if !pauseSupported {
		kinds = slices.DeleteFunc(kinds, func(k FaultKind) bool { return k == FaultPause })
	}
	return kinds
}

// PlanFaults returns a schedule of n faults: exactly one FaultKillAll, placed
// in the first two thirds so a run whose cycles take longer than planned
// still reaches it, and the rest in shuffled rounds of RegularFaults, so
// every kind appears once n is large enough. The same rng state gives the
// same plan.
func PlanFaults(rng *rand.Rand, n int) []FaultKind {
	if n <= 0 {
		return nil
	}
	plan := make([]FaultKind, 0, n)
	for len(plan) < n-1 {
		round := RegularFaults()
		rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		plan = append(plan, round[:min(len(round), n-1-len(plan))]...)
	}
	at := rng.IntN(max(1, (2*n+2)/3))
	return slices.Insert(plan, at, FaultKillAll)
}

// RequiredFaults is how many faults a run of the given length must inject
// for it to count: two thirds of the cycles that fit (6 for 3 minutes at
// 20 s), and at least one.
func RequiredFaults(duration, interval time.Duration) int {
	if interval <= 0 {
		return 1
	}
	return max(1, int(duration/interval)*2/3)
}

// Nemesis injects faults into a cluster running the workload's topic.
type Nemesis struct {
	Cluster    *Cluster
	Rng        *rand.Rand
	Topic      string
	Partitions int32
}

// Inject starts one fault of the given kind and describes it. The fault
// stays until Cluster.Restore (a torn tail restarts its node itself). When
// the cluster cannot name a leader, the kill faults pick a random node and
// say so.
func (n *Nemesis) Inject(ctx context.Context, kind FaultKind) (string, error) {
	c := n.Cluster
	size := c.Size()
	random := func() int { return n.Rng.IntN(size) }
	lookup := func(what string, find func(context.Context) (int, error)) (int, string) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		i, err := find(lctx)
		if err != nil {
			i = random()
			return i, fmt.Sprintf(" (%s unknown: %v; picked a random node)", what, err)
		}
		return i, fmt.Sprintf(", %s", what)
	}
	switch kind {
	case FaultKillLeader:
		p := int32(n.Rng.IntN(int(max(n.Partitions, 1))))
		what := fmt.Sprintf("leader of %s-%d", n.Topic, p)
		i, note := lookup(what, func(ctx context.Context) (int, error) { return c.PartitionLeader(ctx, n.Topic, p) })
		d, err := c.Kill(i)
		return d + note, err
	case FaultKillController:
		i, note := lookup("controller leader", c.ControllerLeader)
		d, err := c.Kill(i)
		return d + note, err
	case FaultPause:
		return c.Pause(random())
	case FaultPartition:
		return c.Partition([]int{random()})
	case FaultOneWay:
		if size < 2 {
			return "", fmt.Errorf("%s needs two nodes", kind)
		}
		from := random()
		to := (from + 1 + n.Rng.IntN(size-1)) % size
		return c.OneWay(from, to)
	case FaultSlow:
		i := random()
		delay := time.Duration(50+n.Rng.IntN(250)) * time.Millisecond
		var links []string
		for j := range size {
			if j == i {
				continue
			}
			if _, err := c.Slow(i, j, delay); err != nil {
				return "", err
			}
			if _, err := c.Slow(j, i, delay); err != nil {
				return "", err
			}
			links = append(links, c.name(j))
		}
		return fmt.Sprintf("slow links between %s and %s (+%v each way)", c.name(i), strings.Join(links, ","), delay), nil
	case FaultTornTail:
		return c.TearTail(random(), n.Rng)
	case FaultKillAll:
		return c.KillAll()
	}
	return "", fmt.Errorf("unknown fault kind %q", kind)
}
