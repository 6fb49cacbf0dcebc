package project

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
)

// Policy says what a project's config may reach beyond the project.
type Policy int

const (
	// Recipe is a tenant's project, as pei serve checks it, a worker
	// builds it and pei submit checks it before the upload: the config
	// and every file it names are read through an os.Root of the project
	// (nothing outside it, no link out of it) and ${VAR} expands from
	// nothing. It is the zero Policy, so a forgotten one is the safe one.
	Recipe Policy = iota
	// Local is the user's own project (pei configure, pei build): its
	// config may name files anywhere on this machine and ${VAR} expands
	// from LoadOptions.Lookup.
	Local
)

func (p Policy) String() string {
	if p == Local {
		return "local"
	}
	return "recipe"
}

// LoadOptions say which project to load and under which policy.
type LoadOptions struct {
	Policy Policy
	// Dir is the project directory. A Local project is read from it; a
	// Recipe is read through an os.Root of it, unless FS is given.
	Dir string
	// FS is a Recipe already opened (an os.Root's FS); Dir may then be
	// empty. A Local project cannot be given as an fs.FS: its config may
	// name host files by absolute path, which no fs.FS of the project
	// holds.
	FS fs.FS
	// File is the config's path in the project; "" means user_config.yml.
	File string
	// Lookup expands ${VAR} in a Local project's config (nil: nothing is
	// set). A Recipe never reads it.
	Lookup config.LookupFunc
	// Name is the project's name in the plan; "" means plan.ProjectName
	// of Dir, or "recipe" when there is no Dir.
	Name string
	// Catalog is pei serve's catalog for the build (config.LoadOptions).
	Catalog []config.CatalogItem
}

// Project is a loaded project: its validated config and its plan.
type Project struct {
	// Config is the validated config with its defaults applied.
	Config config.Config
	// File is the config's path as errors and generated files name it.
	File string
	Plan plan.Plan
	// Exclude is what .dockerignore keeps out of the build context.
	Exclude []string
}

// Load reads, validates and plans a project. A config with problems gives
// config.Errors (file, line, field and fix for each); nothing is written.
func Load(opts LoadOptions) (Project, error) {
	cfg, err := loadConfig(opts)
	if err != nil {
		return Project{}, err
	}
	full := config.WithDefaults(cfg)
	name := opts.Name
	switch {
	case name != "":
	case opts.Dir != "":
		name = plan.ProjectName(mustAbs(opts.Dir))
	default:
		name = "recipe"
	}
	p, err := plan.New(full, name)
	if err != nil {
		return Project{}, err
	}
	return Project{Config: full, File: cfg.File, Plan: p, Exclude: excludes(full)}, nil
}

// loadConfig reads and validates the config under opts.Policy, without
// defaults or a plan (Remove needs only the image names).
func loadConfig(opts LoadOptions) (config.Config, error) {
	switch opts.Policy {
	case Local:
		return config.Load(config.LoadOptions{ProjectDir: opts.Dir, File: opts.File, Lookup: opts.Lookup, Catalog: opts.Catalog})
	case Recipe:
		fsys := opts.FS
		if fsys == nil {
			root, err := os.OpenRoot(opts.Dir)
			if err != nil {
				return config.Config{}, fmt.Errorf("recipe: %w", err)
			}
			// Safe to close after loading: nothing is read afterwards.
			defer root.Close()
			fsys = root.FS()
		}
		return config.Load(config.LoadOptions{FS: fsys, File: opts.File, Catalog: opts.Catalog})
	}
	return config.Config{}, fmt.Errorf("project: unknown policy %d", opts.Policy)
}
