// Package api serves Weir's HTTP admin endpoints: liveness and readiness
// today; metrics and REST administration later.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
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

// Nodes is the cluster administration a node offers (cluster mode).
type Nodes interface {
	// Decommission drains a node: its replicas move to other nodes.
	Decommission(ctx context.Context, node int32) error
}

// Error is an administration failure with the HTTP status it maps to.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

// NewHandler returns the admin HTTP handler. If st also implements Nodes,
// POST /v1/nodes/{id}/decommission is served.
func NewHandler(st Status) http.Handler {
	mux := http.NewServeMux()
	if nodes, ok := st.(Nodes); ok {
		mux.HandleFunc("POST /v1/nodes/{id}/decommission", func(w http.ResponseWriter, r *http.Request) {
			id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
			if err != nil || id <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("node id %q is not a positive integer", r.PathValue("id"))})
				return
			}
			if err := nodes.Decommission(r.Context(), int32(id)); err != nil {
				code := http.StatusInternalServerError
				var ae *Error
				if errors.As(err, &ae) {
					code = ae.Code
				}
				writeJSON(w, code, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": "draining", "node": strconv.Itoa(int(id))})
		})
	}
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
