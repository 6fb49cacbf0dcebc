package inspect

import "fmt"

// Gate is what a CI run demands of an image (dive's CI rules).
type Gate struct {
	MinEfficiency float64 // 0 means no minimum
	MaxWasted     int64   // -1 means no maximum
	AllowSecrets  bool
}

// Check lists how r breaks g; none means it passes.
func (g Gate) Check(r Report) []string {
	var out []string
	if g.MinEfficiency > 0 && r.Efficiency < g.MinEfficiency {
		out = append(out, fmt.Sprintf("efficiency %.4f is below the minimum %.4f", r.Efficiency, g.MinEfficiency))
	}
	if g.MaxWasted >= 0 && r.WastedBytes > g.MaxWasted {
		out = append(out, fmt.Sprintf("%s wasted is over the maximum %s", human(r.WastedBytes), human(g.MaxWasted)))
	}
	if !g.AllowSecrets && len(r.Findings) > 0 {
		out = append(out, fmt.Sprintf("%d secret(s) found", len(r.Findings)))
	}
	return out
}
