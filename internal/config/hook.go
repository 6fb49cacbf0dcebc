package config

import (
	"fmt"

	"github.com/google/shlex"
)

// Hook is one hook entry, "path [args...]" split with shell quoting rules:
// Script is the path as written, relative to installation/. Load splits
// every entry once; Raw keeps the entry for messages and step titles.
type Hook struct {
	Raw    string
	Script string
	Args   []string
}

// String returns the entry as written.
func (h Hook) String() string { return h.Raw }

func (h *Hook) setRaw(s string) { h.Raw = s }

// parseHook splits a hook entry into its script and arguments.
func parseHook(entry string) (Hook, error) {
	words, err := shlex.Split(entry)
	if err != nil {
		return Hook{}, fmt.Errorf("cannot split %q into a path and arguments: %v", entry, err)
	}
	if len(words) == 0 {
		return Hook{}, fmt.Errorf("empty entry; give a script path relative to installation/")
	}
	return Hook{Raw: entry, Script: words[0], Args: words[1:]}, nil
}
