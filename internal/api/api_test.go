package api

import (
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
