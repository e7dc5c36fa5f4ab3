package clientcmd

import (
	"fmt"
	"strings"
)

// KV is one key=value argument, kept in the order given.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ParseKV splits "k=v" at the first '='. The value may be empty and may itself
// contain '='; the key may not be empty.
func ParseKV(flag, s string) (KV, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return KV{}, fmt.Errorf("%s %q is not key=value", flag, s)
	}
	return KV{Key: k, Value: v}, nil
}

// ParseKVs parses every value of a repeatable key=value flag.
func ParseKVs(flag string, ss []string) ([]KV, error) {
	out := make([]KV, 0, len(ss))
	for _, s := range ss {
		kv, err := ParseKV(flag, s)
		if err != nil {
			return nil, err
		}
		out = append(out, kv)
	}
	return out, nil
}
