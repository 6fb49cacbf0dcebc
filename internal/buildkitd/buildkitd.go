// Package buildkitd finds or starts the BuildKit daemon that pei builds
// with: a daemon the user names, one in BUILDKIT_HOST, or one pei starts for
// the build (as root directly, as another user under rootlesskit) with its
// state under the user's cache directory, stopped cleanly afterwards.
package buildkitd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Daemon is a BuildKit daemon pei can talk to.
type Daemon struct {
	Addr string // unix:///... or tcp://...
	// cmd is set when pei started the daemon and must stop it.
	cmd  *exec.Cmd
	done chan struct{} // closed when the started daemon has exited
	log  string
	// isolated is set when pei started the daemon with Network.Isolate;
	// iso is the network it then set up and removes after the daemon.
	isolated bool
	iso      *isolation
}

// Options say how to find or start a daemon.
type Options struct {
	// Builder is "auto", "" (same), or an address (unix://, tcp://).
	Builder string
	// StateDir holds a started daemon's state and the warm daemon's record.
	StateDir string
	// Getenv reads the environment (BUILDKIT_HOST); nil means none.
	Getenv func(string) string
	// Network is where the steps of a daemon pei starts may connect. An
	// isolated build never uses a warm daemon ('pei builder start'), which
	// has the host's network.
	Network Network
}

// ErrMissing is matched by errors about missing tools or set-up.
var ErrMissing = errors.New("missing build tool")

// Find returns a running daemon or starts one.
func Find(ctx context.Context, opts Options) (*Daemon, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	switch b := opts.Builder; {
	case b != "" && b != "auto":
		return &Daemon{Addr: b}, nil
	case getenv("BUILDKIT_HOST") != "":
		return &Daemon{Addr: getenv("BUILDKIT_HOST")}, nil
	}
	// A daemon kept warm by 'pei builder start'.
	if d, ok := Running(opts.StateDir); ok && !opts.Network.Isolate {
		return d, nil
	}
	return Start(ctx, opts.StateDir, opts.Network)
}

// warmFile records a daemon started by StartWarm: "PID ADDR".
const warmFile = "warm"

// Running returns the warm daemon of stateDir if it answers.
func Running(stateDir string) (*Daemon, bool) {
	b, err := os.ReadFile(filepath.Join(stateDir, warmFile))
	if err != nil {
		return nil, false
	}
	pidStr, addr, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || syscall.Kill(pid, 0) != nil {
		return nil, false
	}
	sock, ok := strings.CutPrefix(addr, "unix://")
	if !ok {
		return nil, false
	}
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, false
	}
	c.Close()
	return &Daemon{Addr: addr}, true
}

// StartWarm starts a daemon that outlives pei, for 'pei builder start';
// later builds find it through Running.
func StartWarm(ctx context.Context, state string) (*Daemon, error) {
	if d, ok := Running(state); ok {
		return d, nil
	}
	d, err := Start(ctx, state, Network{})
	if err != nil {
		return nil, err
	}
	rec := fmt.Sprintf("%d %s\n", d.cmd.Process.Pid, d.Addr)
	if err := os.WriteFile(filepath.Join(state, warmFile), []byte(rec), 0o600); err != nil {
		d.Stop()
		return nil, err
	}
	d.cmd = nil // not ours to stop any more
	return d, nil
}

// StopWarm stops the warm daemon of dir, if any; it reports whether one ran.
func StopWarm(state string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(state, warmFile))
	if err != nil {
		return false, nil
	}
	pidStr, addr, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	os.Remove(filepath.Join(state, warmFile))
	pid, err := strconv.Atoi(pidStr)
	if err != nil || syscall.Kill(pid, 0) != nil {
		return false, nil
	}
	terminate(pid, addr, func() bool { return syscall.Kill(pid, 0) != nil })
	return true, nil
}

// terminate ends a daemon's process group (SIGTERM, then SIGKILL after
// 20 s) and removes its socket directory.
func terminate(pid int, addr string, exited func() bool) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 200 && !exited(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !exited() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	if sock, ok := strings.CutPrefix(addr, "unix://"); ok {
		os.RemoveAll(filepath.Dir(sock))
	}
}

// Start starts a buildkitd with its state in stateDir: as root directly,
// as any other user under rootlesskit; n says where its build steps may
// connect.
func Start(ctx context.Context, stateDir string, n Network) (_ *Daemon, err error) {
	bin, err := exec.LookPath("buildkitd")
	if err != nil {
		return nil, fmt.Errorf("%w: buildkitd is not on PATH; build it with scripts/setup.sh (from the pinned Go module github.com/moby/buildkit), or pass --builder unix:///path/to/buildkitd.sock", ErrMissing)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("%w: runc is not on PATH; install it (apt-get install runc)", ErrMissing)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("buildkitd state %s: %w", stateDir, err)
	}
	// Unix socket paths are short; keep the socket in a short run dir.
	runDir, err := os.MkdirTemp("", "pei-bk-")
	if err != nil {
		return nil, err
	}
	var iso *isolation
	defer func() {
		if err != nil {
			iso.teardown()
			os.RemoveAll(runDir)
		}
	}()
	sock := filepath.Join(runDir, "buildkitd.sock")
	args := []string{"--root", filepath.Join(stateDir, "root"), "--addr", "unix://" + sock,
		"--oci-worker=true", "--containerd-worker=false"}
	if !n.Isolate || n.HostAllowed {
		args = append(args, "--allow-insecure-entitlement", "network.host")
	}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		if n.Isolate {
			var more []string
			if iso, more, err = isolateRoot(runDir, n); err != nil {
				return nil, err
			}
			args = append(more, args...)
		}
		cmd = exec.Command(bin, args...)
		if iso != nil {
			// The daemon holds its network's lock too: should pei die, the
			// network stays taken until the daemon ends.
			cmd.ExtraFiles = []*os.File{iso.lock}
		}
	} else {
		rk, err := exec.LookPath("rootlesskit")
		if err != nil {
			return nil, fmt.Errorf("%w: building without root needs rootlesskit; install it (apt-get install rootlesskit uidmap)", ErrMissing)
		}
		if err := checkSubIDs(); err != nil {
			return nil, err
		}
		rkArgs := []string{"--net=host", "--disable-host-loopback"}
		var wrapper []string
		if n.Isolate {
			if rkArgs, wrapper, err = rootlessNetwork(runDir, n); err != nil {
				return nil, err
			}
		}
		rkArgs = append(rkArgs, "--copy-up=/etc", "--copy-up=/run", "--state-dir", filepath.Join(runDir, "rootlesskit"))
		rkArgs = append(append(rkArgs, wrapper...), bin, "--oci-worker-no-process-sandbox")
		cmd = exec.Command(rk, append(rkArgs, args...)...)
		// Rootless buildkitd keeps its sockets under XDG_RUNTIME_DIR
		// (else /run/buildkit, which an ordinary user cannot write).
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runDir, "XTABLES_LOCKFILE="+filepath.Join(runDir, "xtables.lock"))
	}
	logPath := filepath.Join(stateDir, "buildkitd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start buildkitd: %w", err)
	}
	logf.Close()
	d := &Daemon{Addr: "unix://" + sock, cmd: cmd, log: logPath, done: make(chan struct{}), isolated: n.Isolate, iso: iso}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		close(d.done)
		exited <- err
	}()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return d, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("buildkitd exited at start (%v):\n%s", err, tail(logPath, 20))
		case <-deadline.C:
			cmd.Process.Kill()
			<-d.done
			return nil, fmt.Errorf("buildkitd did not listen on %s within 60s:\n%s", sock, tail(logPath, 20))
		case <-ctx.Done():
			cmd.Process.Kill()
			<-d.done
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends a daemon pei started (SIGTERM, then SIGKILL after 20 s).
func (d *Daemon) Stop() error {
	if d == nil || d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	terminate(d.cmd.Process.Pid, d.Addr, func() bool {
		select {
		case <-d.done:
			return true
		default:
			return false
		}
	})
	<-d.done
	d.cmd = nil
	// The daemon's network goes once nothing of it runs any more.
	err := d.iso.teardown()
	d.iso = nil
	return err
}

func checkSubIDs() error {
	user := strconv.Itoa(os.Getuid())
	name := os.Getenv("USER")
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			owner, _, _ := strings.Cut(line, ":")
			if owner != "" && (owner == user || owner == name) {
				found = true
			}
		}
		if err != nil || !found {
			return fmt.Errorf("%w: building without root needs an entry for your user in %s (e.g. as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s)", ErrMissing, f, name)
		}
	}
	return nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
