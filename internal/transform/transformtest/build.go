// Package transformtest builds transform modules from Go source for tests.
package transformtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildFile compiles the package at pkg (a path relative to the repository
// root, such as "examples/uppercase") with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared into the test's temporary directory and returns the
// module's path. The go build cache makes a rebuild cheap.
func BuildFile(t testing.TB, pkg string) string {
	t.Helper()
	return build(t, "", pkg, "-buildmode=c-shared")
}

// BuildCommand builds a WASI command (no -buildmode) from a package of the
// Go module in moduleDir (relative to the repository root), such as a
// transform written with another SDK, and returns the module's path.
func BuildCommand(t testing.TB, moduleDir, pkg string) string {
	t.Helper()
	return build(t, moduleDir, pkg)
}

func build(t testing.TB, moduleDir, pkg string, flags ...string) string {
	t.Helper()
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".wasm")
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, "./"+pkg)...)
	cmd.Dir = filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), moduleDir)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if moduleDir != "" {
		cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// Build is BuildFile, returning the module's bytes.
func Build(t testing.TB, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(BuildFile(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
