// Package inspect reports what each layer of an image costs: its size, what
// made it (pei writes the config line into the history), the files it
// adds, changes and removes, the bytes that later layers make dead weight,
// and any secret left in a layer, the config or the history. Layers are
// streamed one at a time: memory grows with the number of paths, not with
// their contents. Compare says what changed between two images; Run is
// pei inspect's one call (open, analyse or compare, gate), with Flags
// reading the command's flags into its Request.
package inspect

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options tune Analyze.
type Options struct {
	// Secrets are values (passwords, tokens) that must appear in no layer,
	// config or history entry.
	Secrets []string
	// Top is how many of the most wasteful paths to list; 0 means 10.
	Top int
}

// Layer is one layer's cost.
type Layer struct {
	Index     int    `json:"index"`
	Digest    string `json:"digest"`
	DiffID    string `json:"diff_id"`
	Size      int64  `json:"size"`  // the stored (compressed) blob
	Bytes     int64  `json:"bytes"` // file contents, uncompressed
	CreatedBy string `json:"created_by"`
	Added     int    `json:"added"`
	Changed   int    `json:"changed"`
	Removed   int    `json:"removed"`
}

// Waste is a path whose bytes are not in the final file system: written
// and then overwritten or deleted by a later layer.
type Waste struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	Layers []int  `json:"layers"` // the layers that wrote it
}

// Finding is a secret: in a layer's file, or (Layer -1) in the config or
// history.
type Finding struct {
	Layer int    `json:"layer"`
	Path  string `json:"path"`
	Kind  string `json:"kind"`
}

// Report is an image's analysis.
type Report struct {
	Image        string    `json:"image"`
	Digest       string    `json:"digest"`
	Layers       []Layer   `json:"layers"`
	Files        int       `json:"files"`         // in the final file system
	TotalBytes   int64     `json:"total_bytes"`   // file contents over all layers
	VisibleBytes int64     `json:"visible_bytes"` // in the final file system
	WastedBytes  int64     `json:"wasted_bytes"`  // TotalBytes - VisibleBytes
	Efficiency   float64   `json:"efficiency"`    // VisibleBytes / TotalBytes
	Wasted       []Waste   `json:"wasted"`        // the largest, by bytes
	Findings     []Finding `json:"findings"`
}

// version is one layer's copy of a path.
type version struct {
	layer int
	size  int64
}

type pathState struct {
	versions []version
	dir      bool
	gone     bool // deleted by a later layer
}

// Analyze reads every layer of img once, in order.
func Analyze(name string, img v1.Image, opt Options) (Report, error) {
	r := Report{Image: name}
	if opt.Top == 0 {
		opt.Top = 10
	}
	if d, err := img.Digest(); err == nil {
		r.Digest = d.String()
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return r, fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return r, fmt.Errorf("layers: %w", err)
	}
	sc := newScanner(opt.Secrets)
	r.Findings = sc.config(cf)
	history := layerHistory(cf)
	paths := map[string]*pathState{}
	for i, l := range layers {
		lr := Layer{Index: i}
		if d, err := l.Digest(); err == nil {
			lr.Digest = d.String()
		}
		// From the config: asking the layer would decompress it to hash it.
		if i < len(cf.RootFS.DiffIDs) {
			lr.DiffID = cf.RootFS.DiffIDs[i].String()
		}
		if n, err := l.Size(); err == nil {
			lr.Size = n
		}
		if i < len(history) {
			lr.CreatedBy = history[i]
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return r, fmt.Errorf("layer %d: %w", i, err)
		}
		err = walkLayer(rc, i, paths, &lr, sc, &r.Findings)
		rc.Close()
		if err != nil {
			return r, fmt.Errorf("layer %d (%s): %w", i, lr.Digest, err)
		}
		r.Layers = append(r.Layers, lr)
	}
	for p, st := range paths {
		var total int64
		for _, v := range st.versions {
			total += v.size
		}
		r.TotalBytes += total
		visible := int64(0)
		if !st.gone && len(st.versions) > 0 {
			visible = st.versions[len(st.versions)-1].size
			if !st.dir {
				r.Files++
			}
		}
		r.VisibleBytes += visible
		if total > visible {
			w := Waste{Path: "/" + p, Bytes: total - visible}
			for _, v := range st.versions {
				w.Layers = append(w.Layers, v.layer)
			}
			r.Wasted = append(r.Wasted, w)
		}
	}
	r.WastedBytes = r.TotalBytes - r.VisibleBytes
	r.Efficiency = 1
	if r.TotalBytes > 0 {
		r.Efficiency = float64(r.VisibleBytes) / float64(r.TotalBytes)
	}
	sort.Slice(r.Wasted, func(i, j int) bool {
		if r.Wasted[i].Bytes != r.Wasted[j].Bytes {
			return r.Wasted[i].Bytes > r.Wasted[j].Bytes
		}
		return r.Wasted[i].Path < r.Wasted[j].Path
	})
	if len(r.Wasted) > opt.Top {
		r.Wasted = r.Wasted[:opt.Top]
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		if r.Findings[i].Layer != r.Findings[j].Layer {
			return r.Findings[i].Layer < r.Findings[j].Layer
		}
		return r.Findings[i].Path < r.Findings[j].Path
	})
	return r, nil
}

// layerHistory is the created_by of each non-empty history entry: one per
// layer, in order.
func layerHistory(cf *v1.ConfigFile) []string {
	var out []string
	for _, h := range cf.History {
		if !h.EmptyLayer {
			out = append(out, strings.TrimSpace(h.CreatedBy))
		}
	}
	return out
}

// eachEntry calls entry for each file a layer writes (p is its path
// without the leading slash; r its contents) and whiteout for each path it
// deletes: a file or directory, or (opaque) what lower layers put inside a
// directory.
func eachEntry(rc io.Reader, entry func(p string, h *tar.Header, r io.Reader) error, whiteout func(p string, opaque bool)) error {
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := clean(h.Name)
		if p == "" {
			continue
		}
		dir, base := path.Split(p)
		if target, ok := strings.CutPrefix(base, ".wh."); ok {
			if target == ".wh..opq" {
				whiteout(strings.TrimSuffix(dir, "/"), true)
			} else {
				whiteout(dir+target, false)
			}
			continue
		}
		if err := entry(p, h, tr); err != nil {
			return err
		}
	}
}

// walkLayer applies one layer's entries to paths.
func walkLayer(rc io.Reader, layer int, paths map[string]*pathState, lr *Layer, sc *scanner, findings *[]Finding) error {
	return eachEntry(rc, func(p string, h *tar.Header, r io.Reader) error {
		isDir := h.Typeflag == tar.TypeDir
		var size int64
		if h.Typeflag == tar.TypeReg {
			size = h.Size
			for _, kind := range sc.file(r, size) {
				*findings = append(*findings, Finding{Layer: layer, Path: "/" + p, Kind: kind})
			}
		}
		lr.Bytes += size
		st := paths[p]
		switch {
		case st == nil:
			st = &pathState{}
			paths[p] = st
			if !isDir {
				lr.Added++
			}
		case st.gone:
			st.gone = false
			if !isDir {
				lr.Added++
			}
		case !isDir:
			lr.Changed++
		}
		st.dir = isDir
		st.versions = append(st.versions, version{layer, size})
		return nil
	}, func(p string, opaque bool) {
		lr.Removed += remove(paths, p, !opaque, layer)
	})
}

// remove marks p (itself when self, and everything below it) as deleted by
// layer and returns how many visible non-directory paths that took away.
// What layer itself wrote stays.
func remove(paths map[string]*pathState, p string, self bool, layer int) int {
	n := 0
	take := func(st *pathState) {
		if st.gone || st.versions[len(st.versions)-1].layer == layer {
			return
		}
		st.gone = true
		if !st.dir {
			n++
		}
	}
	if self {
		st := paths[p]
		if st == nil {
			return 0
		}
		take(st)
		if !st.dir {
			return n // a file: nothing below it
		}
	}
	prefix := p + "/"
	if p == "" {
		prefix = ""
	}
	for q, st := range paths {
		if strings.HasPrefix(q, prefix) && q != p {
			take(st)
		}
	}
	return n
}

func clean(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}
