package node_test

import (
	"strings"
	"testing"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/server/servertest"
)

func TestDecommissionNeedsACluster(t *testing.T) {
	n := servertest.Start(t, nil)
	r := clitest.Run(t, "", "node", "decommission", "1", "--admin-url", "http://"+n.HTTPAddr())
	if r.Code == 0 || !strings.Contains(r.Stderr, "not part of a cluster") {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	r = clitest.Run(t, "", "node", "decommission", "zero", "--admin-url", "http://"+n.HTTPAddr())
	if r.Code == 0 || !strings.Contains(r.Stderr, "not a positive integer") {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
}
