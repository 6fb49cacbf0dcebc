package project

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/pei-dev/pei/internal/config"
)

//go:embed all:scaffold
var scaffoldFS embed.FS

// Quick modes of Create: pei's, then PeiDocker's quick templates that pei's
// do not already cover (its "minimal" is pei's "ssh").
var QuickModes = []string{"minimal", "ssh", "gpu", "full", "cn-demo", "cn-dev", "cn-ml"}

// quickBases are the default bases of the quick modes that have their own,
// as PeiDocker's templates name them.
var quickBases = map[string]string{
	"cn-demo": "ubuntu:24.04",
	"cn-dev":  "ubuntu:24.04",
	"cn-ml":   "nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04",
}

// CreateOptions configure Create.
type CreateOptions struct {
	Dir   string
	Quick string // one of QuickModes; "" means ssh
	Force bool   // overwrite an existing project's scaffold files
	Base  string // base image; "" means the mode's (debian:bookworm for most)
}

// ErrExists is returned when Create would overwrite a project.
var ErrExists = errors.New("project exists")

// Create scaffolds a project: a commented user_config.yml, installation/
// with example hooks, and a .gitignore. It refuses to touch a directory
// that already holds a user_config.yml unless Force is set.
func Create(opts CreateOptions) ([]string, error) {
	quick := opts.Quick
	if quick == "" {
		quick = "ssh"
	}
	valid := false
	for _, q := range QuickModes {
		valid = valid || q == quick
	}
	if !valid {
		return nil, fmt.Errorf("--quick %q: choose one of %s", quick, strings.Join(QuickModes, ", "))
	}
	base := opts.Base
	if base == "" {
		base = quickBases[quick]
	}
	if base == "" {
		base = "debian:bookworm"
	}
	cfgPath := filepath.Join(opts.Dir, config.DefaultFile)
	if _, err := os.Stat(cfgPath); err == nil && !opts.Force {
		return nil, fmt.Errorf("%s already exists: %w (use --force to overwrite the scaffold files)", cfgPath, ErrExists)
	}
	name := strings.ToLower(filepath.Base(mustAbs(opts.Dir)))
	name = strings.Trim(strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, name), "-_.")
	if name == "" {
		name = "pei-image"
	}
	cn := strings.HasPrefix(quick, "cn-")
	data := map[string]any{"Base": base, "Name": name, "SSH": quick != "minimal", "GPU": quick == "gpu" || quick == "cn-ml", "Full": quick == "full",
		"Root": quick == "full" || cn, "SSHPort": 22, "Mirror": "", "ProxyPort": 0,
		"CN": cn, "Vision": quick == "cn-ml", "DataHost": quick == "cn-demo"}
	// PeiDocker's cn-* templates: Chinese mirrors, a proxy on the host's
	// port 7890 (not enabled), root's password, me's home on a volume.
	switch quick {
	case "cn-demo":
		data["SSHPort"], data["Mirror"] = 333, "aliyun"
	case "cn-dev", "cn-ml":
		data["Mirror"], data["ProxyPort"] = "tuna", 7890
	}

	var files []fileOut
	err := fs.WalkDir(scaffoldFS, "scaffold", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, "scaffold/")
		content, err := scaffoldFS.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		switch {
		case rel == "gitignore":
			rel = ".gitignore"
		case strings.HasSuffix(rel, ".tmpl"):
			t, err := template.New(rel).Parse(string(content))
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if err := t.Execute(&b, data); err != nil {
				return err
			}
			content, rel = b.Bytes(), strings.TrimSuffix(rel, ".tmpl")
		case strings.HasSuffix(rel, ".sh"), strings.HasSuffix(rel, ".bash"):
			mode = 0o755
		}
		files = append(files, fileOut{path: path.Clean(rel), data: content, mode: mode})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	if err := writeAll(opts.Dir, files); err != nil {
		return nil, err
	}
	var written []string
	for _, f := range files {
		written = append(written, f.path)
	}
	return written, nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
