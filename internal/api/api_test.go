package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type status struct {
	ready   bool
	healthy bool
}

func (s *status) Ready() bool             { return s.ready }
func (s *status) Healthy() (bool, string) { return s.healthy, "disk failed" }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthEndpoints(t *testing.T) {
	st := &status{healthy: true}
	h := NewHandler(st)
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz before ready: %d", code)
	}
	st.ready = true
	if code, body := get(t, h, "/readyz"); code != http.StatusOK || !strings.Contains(body, "ready") {
		t.Fatalf("readyz: %d %s", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	st.healthy = false
	if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk failed") {
		t.Fatalf("unhealthy: %d %s", code, body)
	}
	if code, _ := get(t, h, "/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
}

type nodesStatus struct {
	status
	got []int32
	err error
}

func (n *nodesStatus) Decommission(_ context.Context, id int32) error {
	n.got = append(n.got, id)
	return n.err
}

func post(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
	return rec.Code, rec.Body.String()
}

func TestDecommissionEndpoint(t *testing.T) {
	st := &nodesStatus{}
	h := NewHandler(st)
	if code, body := post(t, h, "/v1/nodes/3/decommission"); code != http.StatusOK || !strings.Contains(body, "draining") || len(st.got) != 1 || st.got[0] != 3 {
		t.Fatalf("decommission 3: %d %s %v", code, body, st.got)
	}
	if code, _ := post(t, h, "/v1/nodes/x/decommission"); code != http.StatusBadRequest {
		t.Fatalf("bad id: %d", code)
	}
	st.err = &Error{Code: http.StatusNotFound, Message: "node 9 is not registered"}
	if code, body := post(t, h, "/v1/nodes/9/decommission"); code != http.StatusNotFound || !strings.Contains(body, "not registered") {
		t.Fatalf("unknown node: %d %s", code, body)
	}
	// A node without cluster administration does not serve it.
	if code, _ := post(t, NewHandler(&status{}), "/v1/nodes/3/decommission"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("single node: %d", code)
	}
}
