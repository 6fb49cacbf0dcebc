// Command inspect measures pei inspect on a large image: it generates an
// image of -size bytes in -files files over several gzip layers (with files
// overwritten and deleted by later layers, as real images have), writes it
// as an OCI layout, then times a baseline that only decompresses and walks
// every layer, and pei inspect's analysis of the same layout. It prints
// both times, their ratio, and the peak heap of each.
//
//	go run ./bench/inspect [-size 1GB] [-files 20000] [-layers 5]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/inspect"
)

func main() {
	sizeFlag := flag.String("size", "1GB", "total file bytes")
	files := flag.Int("files", 20000, "files in all")
	nLayers := flag.Int("layers", 5, "layers")
	flag.Parse()
	size, err := units.FromHumanSize(*sizeFlag)
	check(err)
	dir, err := os.MkdirTemp("", "pei-bench-inspect-")
	check(err)
	defer os.RemoveAll(dir)

	start := time.Now()
	img := generate(size, *files, *nLayers, dir)
	p, err := layout.Write(dir+"/layout", empty.Index)
	check(err)
	check(p.AppendImage(img))
	fmt.Printf("generated %s in %d files over %d layers in %.1f s\n", units.HumanSize(float64(size)), *files, *nLayers, time.Since(start).Seconds())

	open := func() v1.Image {
		img, err := image.FromLayout(dir+"/layout", "bench", "", "", v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
		check(err)
		return img
	}
	var read int64
	base, baseHeap := measure(func() {
		layers, err := open().Layers()
		check(err)
		for _, l := range layers {
			rc, err := l.Uncompressed()
			check(err)
			tr := tar.NewReader(rc)
			for {
				if _, err := tr.Next(); errors.Is(err, io.EOF) {
					break
				} else {
					check(err)
				}
				n, err := io.Copy(io.Discard, tr)
				check(err)
				read += n
			}
			rc.Close()
		}
	})
	var r inspect.Report
	dur, heap := measure(func() {
		r, err = inspect.Analyze("bench", open(), inspect.Options{Secrets: []string{"not-in-there"}})
		check(err)
	})
	fmt.Printf("\n| | time | peak heap |\n|---|---|---|\n")
	fmt.Printf("| decompress and walk every layer (baseline) | %.2f s | %s |\n", base.Seconds(), units.BytesSize(float64(baseHeap)))
	fmt.Printf("| pei inspect analysis | %.2f s | %s |\n", dur.Seconds(), units.BytesSize(float64(heap)))
	fmt.Printf("| ratio | %.2f× | |\n", dur.Seconds()/base.Seconds())
	fmt.Printf("\nbaseline read %s of file contents\n", units.HumanSize(float64(read)))
	fmt.Printf("report: %d files, %s written, %s wasted, efficiency %.4f\n", r.Files, units.HumanSize(float64(r.TotalBytes)), units.HumanSize(float64(r.WastedBytes)), r.Efficiency)
}

// generate makes the image: layer i holds its share of the files; each
// later layer also overwrites some files of the one before and deletes
// others.
func generate(size int64, files, layers int, dir string) v1.Image {
	rng := rand.New(rand.NewPCG(1, 2))
	per := files / layers
	avg := size / int64(files)
	img := empty.Image
	// Contents that gzip to about half, like programs and libraries:
	// random runs between runs of text.
	chunk := make([]byte, 1<<20)
	text := []byte("usr/lib/x86_64-linux-gnu/libexample.so.1 GLIBC_2.34 __cxa_finalize ")
	for i := range chunk {
		if (i/512)%2 == 0 {
			chunk[i] = byte(rng.IntN(256))
		} else {
			chunk[i] = text[i%len(text)]
		}
	}
	for l := 0; l < layers; l++ {
		path := fmt.Sprintf("%s/layer%d.tar.gz", dir, l)
		f, err := os.Create(path)
		check(err)
		zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
		check(err)
		tw := tar.NewWriter(zw)
		for i := 0; i < per; i++ {
			n := avg/2 + rng.Int64N(avg+1)
			name := fmt.Sprintf("data/l%d/d%d/f%d.bin", l, i%100, i)
			check(tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: n, Typeflag: tar.TypeReg}))
			off := rng.IntN(len(chunk) / 2)
			for left := n; left > 0; {
				w := min(left, int64(len(chunk)-off))
				_, err := tw.Write(chunk[off : off+int(w)])
				check(err)
				left -= w
				off = 0
			}
		}
		if l > 0 {
			for i := 0; i < per/20; i++ { // overwrite 5% of the layer below
				name := fmt.Sprintf("data/l%d/d%d/f%d.bin", l-1, i%100, i)
				check(tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 10, Typeflag: tar.TypeReg}))
				_, err := tw.Write(bytes.Repeat([]byte("x"), 10))
				check(err)
			}
			for i := per / 20; i < per/10; i++ { // and delete another 5%
				check(tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/l%d/d%d/.wh.f%d.bin", l-1, i%100, i), Typeflag: tar.TypeReg}))
			}
		}
		check(tw.Close())
		check(zw.Close())
		check(f.Close())
		layer, err := tarball.LayerFromFile(path)
		check(err)
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: fmt.Sprintf("bench layer %d", l)}})
		check(err)
	}
	return img
}

// measure times f and samples the heap while it runs.
func measure(f func()) (time.Duration, uint64) {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	f()
	d := time.Since(start)
	close(stop)
	<-done
	return d, peak.Load()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
