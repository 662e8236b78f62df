package runspec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/runtime/caps"
)

// capabilities is the capability list a container gets, by Docker's rules:
// privileged means every capability available; otherwise "ALL" in add
// means every available one but those dropped, "ALL" in drop means only
// those added, and else the defaults less those dropped plus those added.
//
// Available means in this process's bounding set, as Docker takes "all"
// to mean those it has itself: the runtime refuses any other (no process
// it starts could have it), and a container manager run inside a
// container, or under a restricted service manager, lacks some.
//
// The names are checked even where the rules ignore them (privileged, or
// dropped and added both), so that a typo never passes unnoticed.
func capabilities(add, drop []string, privileged bool) ([]string, error) {
	available := caps.Bounding()
	adds, err := normalizeCaps("Options.CapAdd", add, available)
	if err != nil {
		return nil, err
	}
	drops, err := normalizeCaps("Options.CapDrop", drop, nil)
	if err != nil {
		return nil, err
	}
	all := available
	var out []string
	switch {
	case privileged:
		out = all
	case slices.Contains(adds, "ALL"):
		for _, c := range all {
			if !slices.Contains(drops, c) {
				out = append(out, c)
			}
		}
	case slices.Contains(drops, "ALL"):
		out = adds
	default:
		for _, c := range defaultCaps {
			if !slices.Contains(drops, c) {
				out = append(out, c)
			}
		}
		out = append(out, adds...)
	}
	// Number order, once each: the lists are compared and diffed by
	// people, and the runtime takes a set anyway.
	slices.SortFunc(out, func(a, b string) int { return caps.Number(a) - caps.Number(b) })
	return slices.Compact(out), nil
}

// normalizeCaps returns names as the spec takes them, "CAP_" and upper
// case, keeping "ALL". With available, a name must be in it too.
func normalizeCaps(field string, names, available []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for i, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if c == "ALL" {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		switch {
		case caps.Number(c) < 0:
			return nil, fmt.Errorf("%s[%d] %q: no such capability", field, i, n)
		case available == nil:
		case !caps.Known(c):
			return nil, fmt.Errorf("%s[%d] %q: this kernel does not have it", field, i, n)
		case !slices.Contains(available, c):
			return nil, fmt.Errorf("%s[%d] %q: not in this process's bounding set, so no container it starts can have it", field, i, n)
		}
		out = append(out, c)
	}
	return out, nil
}
