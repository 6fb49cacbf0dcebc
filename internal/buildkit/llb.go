package buildkit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/plan"
)

// ContextName is the name of the project directory as a BuildKit local.
const ContextName = "context"

// Context is the project directory as an LLB source, without what
// .dockerignore keeps out (pei's state, private keys, .git).
func Context(projectKey string, exclude []string) llb.State {
	return llb.Local(ContextName,
		llb.ExcludePatterns(exclude),
		llb.SharedKeyHint("pei:"+projectKey),
		// A fixed id keeps the definition a pure function of the plan.
		llb.LocalUniqueID("pei:"+projectKey),
		llb.WithCustomName("[context] project files"),
	)
}

// StageLLB returns the LLB of one planned stage on top of base, and the
// image config (base's, with the stage's environment and entrypoint).
// secrets are the ids of user build secrets, mounted at /run/secrets/ID in
// every on_build step. The run-time steps of the carried stages (earlier
// stages that base is built from, without their run-time steps) are applied
// after this stage's build steps and before its own run-time steps. It is a
// pure function of its inputs. carry is the image a final stage's carry
// step copies from (see plan.Carry); other stages ignore it. cacheNS
// keeps the steps' cache mounts apart from other tenants' (see CacheID).
func StageLLB(s plan.Stage, base llb.State, baseConfig ocispecs.Image, context, carry llb.State, secrets []string, carried []plan.Stage, cacheNS string) (llb.State, ocispecs.Image) {
	st := base
	cfg := baseConfig
	cfg.Config.Env = append([]string(nil), baseConfig.Config.Env...)
	if len(cfg.Config.Env) == 0 {
		cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	for _, e := range cfg.Config.Env {
		if k, v, ok := strings.Cut(e, "="); ok {
			st = st.AddEnv(k, v)
		}
	}
	st = st.Dir("/")
	cfg.History = append([]ocispecs.History(nil), baseConfig.History...)
	build, runtime := SplitRuntime(s.Steps)
	type stageStep struct {
		stage string
		plan.Step
	}
	var steps []stageStep
	for _, st := range build {
		steps = append(steps, stageStep{s.Name, st})
	}
	for _, c := range carried {
		_, rt := SplitRuntime(c.Steps)
		for _, st := range rt {
			steps = append(steps, stageStep{c.Name, st})
		}
	}
	for _, st := range runtime {
		steps = append(steps, stageStep{s.Name, st})
	}
	for _, ss := range steps {
		step := ss.Step
		name := "[" + ss.stage + "] " + step.Title
		// The image history says which config line made each layer.
		createdBy := "pei " + name
		if step.Origin != "" {
			createdBy += " (" + step.Origin
			if step.Pos.Line > 0 {
				createdBy += fmt.Sprintf(", line %d", step.Pos.Line)
			}
			createdBy += ")"
		}
		cfg.History = append(cfg.History, ocispecs.History{CreatedBy: createdBy, Comment: "pei", EmptyLayer: step.Kind == plan.StepEnv})
		switch step.Kind {
		case plan.StepEnv:
			for _, e := range step.Env {
				st = st.AddEnv(e.Name, e.Value)
				cfg.Config.Env = setEnv(cfg.Config.Env, e.Name, e.Value)
			}
		case plan.StepCopy:
			st = st.File(llb.Copy(context, "/"+step.Src, step.Dst, &llb.CopyInfo{
				CopyDirContentsOnly: true, CreateDestPath: true,
			}), llb.WithCustomName(name))
		case plan.StepCarry:
			st = st.File(llb.Copy(carry, plan.CarryDir+"/", "/", &llb.CopyInfo{
				CopyDirContentsOnly: true, CreateDestPath: true,
			}), llb.WithCustomName(name))
		case plan.StepRun:
			opts := []llb.RunOption{llb.Args(step.Command), llb.WithCustomName(name)}
			for _, a := range s.Build.Args {
				// Build arguments reach the step, never the image config.
				opts = append(opts, llb.AddEnv(a.Name, a.Value))
			}
			if s.Build.HostNetwork {
				opts = append(opts, llb.Network(pb.NetMode_HOST))
			}
			if cacheNS != "" {
				opts = append(opts, llb.Hostname(TenantHostname(cacheNS)))
			}
			for _, m := range step.Mounts {
				opts = append(opts, mountOption(m, context, cacheNS))
			}
			if step.OnBuild {
				for _, id := range secrets {
					opts = append(opts, llb.AddSecret("/run/secrets/"+id, llb.SecretID(id), llb.SecretFileOpt(0, 0, 0o400)))
				}
			}
			st = st.Run(opts...).Root()
		}
	}
	cfg.Config.Entrypoint = []string{"bash", path.Join(s.Root, plan.Internals, "entrypoint.sh")}
	cfg.Config.Cmd = nil
	cfg.Config.WorkingDir = "/"
	return st, cfg
}

// CacheNamespace is the prefix of a tenant's cache mount ids: what a
// build for namespace ns (a pei serve tenant) keeps in a cache mount no
// other tenant's build sees. The Dockerfile frontend takes it as
// BUILDKIT_CACHE_MOUNT_NS, so a Dockerfile's own cache ids stay under it.
func CacheNamespace(ns string) string {
	return "pei/ns/" + ns
}

// TenantHostname is the host name of a tenant's build steps. BuildKit
// leaves cache mount ids out of a step's cache key, so another tenant's
// identical step could be handed a result made with that tenant's cache
// mounts (what it read, or what it poisoned them with); the host name is
// in the key and keeps every tenant's step results apart.
func TenantHostname(ns string) string {
	h := "pei-" + ns
	if len(h) > 63 {
		sum := sha256.Sum256([]byte(ns))
		h = "pei-" + hex.EncodeToString(sum[:16])
	}
	return h
}

// CacheID is the id of a cache mount at target: "pei/var/cache/apt" for
// local builds (the id they always had), under CacheNamespace(ns) for a
// tenant's. No local id starts with "pei/ns/" (pei's cache targets are
// fixed), and every tenant's does, so neither reaches the other's.
func CacheID(ns, target string) string {
	if ns == "" {
		return "pei" + target
	}
	return CacheNamespace(ns) + target
}

func mountOption(m plan.Mount, context llb.State, cacheNS string) llb.RunOption {
	switch m.Kind {
	case plan.MountCache:
		return llb.AddMount(m.Target, llb.Scratch(), llb.AsPersistentCacheDir(CacheID(cacheNS, m.Target), llb.CacheMountLocked))
	case plan.MountSecret:
		return llb.AddSecret(m.Target, llb.SecretID(m.Source), llb.SecretFileOpt(0, 0, 0o400))
	default:
		opts := []llb.MountOption{llb.SourcePath("/" + m.Source)}
		if m.ReadWrite {
			// Writable for the step (a script's line endings are fixed in
			// place); what it writes there is thrown away.
			opts = append(opts, llb.ForceNoOutput)
		} else {
			opts = append(opts, llb.Readonly)
		}
		return llb.AddMount(m.Target, context, opts...)
	}
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if name, _, _ := strings.Cut(e, "="); name != k {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

// SplitRuntime splits a stage's steps into its build steps and the
// run-time steps that end it.
func SplitRuntime(steps []plan.Step) (build, runtime []plan.Step) {
	for _, st := range steps {
		if st.Runtime {
			runtime = append(runtime, st)
		} else {
			build = append(build, st)
		}
	}
	return build, runtime
}
