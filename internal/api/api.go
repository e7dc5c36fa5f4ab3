// Package api serves Weir's HTTP admin endpoints: liveness and readiness
// today; metrics and REST administration later.
package api

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
)

// Status is what the health endpoints report on.
type Status interface {
	// Ready reports whether the node serves clients: recovery is done,
	// listeners are up and it is not shutting down.
	Ready() bool
	// Healthy reports whether the process works at all; a problem
	// explains why not.
	Healthy() (ok bool, problem string)
}

// NewHandler returns the admin HTTP handler.
func NewHandler(st Status) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if ok, problem := st.Healthy(); !ok {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "problem": problem})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !st.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	// Go's profiler, for measuring the broker under load
	// (go tool pprof http://127.0.0.1:9644/debug/pprof/profile).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
