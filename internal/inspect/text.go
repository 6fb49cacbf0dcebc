package inspect

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	units "github.com/docker/go-units"
)

func human(n int64) string { return units.HumanSize(float64(n)) }

// WriteText prints r for people: one row per layer, then the totals, the
// most wasteful paths and the secrets found.
func WriteText(w io.Writer, r Report) error {
	fmt.Fprintf(w, "%s  %s\n\n", r.Image, r.Digest)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tSIZE\tCONTENT\tADDED\tCHANGED\tREMOVED\tCREATED BY")
	for _, l := range r.Layers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\n", l.Index, human(l.Size), human(l.Bytes), l.Added, l.Changed, l.Removed, oneLine(l.CreatedBy, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d files, %s in the final file system, %s written by all layers\n", r.Files, human(r.VisibleBytes), human(r.TotalBytes))
	fmt.Fprintf(w, "wasted: %s   efficiency: %.2f%%\n", human(r.WastedBytes), 100*r.Efficiency)
	if len(r.Wasted) > 0 {
		fmt.Fprintln(w, "\nlargest waste (written, then overwritten or removed):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, x := range r.Wasted {
			fmt.Fprintf(tw, "  %s\t%s\tlayers %s\n", human(x.Bytes), x.Path, ints(x.Layers))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "\nsecrets: none found")
		return nil
	}
	fmt.Fprintf(w, "\nsecrets: %d found\n", len(r.Findings))
	for _, f := range r.Findings {
		where := fmt.Sprintf("layer %d %s", f.Layer, f.Path)
		if f.Layer < 0 {
			where = f.Path
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Kind, where)
	}
	return nil
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

func ints(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

// WriteComparison prints c for people, with at most top changes, the
// largest first.
func WriteComparison(w io.Writer, c Comparison, top int) error {
	fmt.Fprintf(w, "A: %s (%d layers, %s)\nB: %s (%d layers, %s)\n", c.A, c.LayersA, human(c.BytesA), c.B, c.LayersB, human(c.BytesB))
	fmt.Fprintf(w, "shared bottom layers: %d\n", c.SharedLayers)
	fmt.Fprintf(w, "files: %d added, %d removed, %d changed; size %+d bytes\n", c.Added, c.Removed, c.Changed, c.BytesB-c.BytesA)
	changes := append([]Change(nil), c.Changes...)
	sort.SliceStable(changes, func(i, j int) bool {
		return max(changes[i].SizeA, changes[i].SizeB) > max(changes[j].SizeA, changes[j].SizeB)
	})
	if len(changes) > top {
		changes = changes[:top]
	}
	if len(changes) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ch := range changes {
		fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\n", ch.Kind, ch.Path, human(ch.SizeA), human(ch.SizeB))
	}
	return tw.Flush()
}
