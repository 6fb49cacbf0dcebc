package buildkitd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/resolvconf"
	"github.com/moby/buildkit/worker/label"
	"github.com/pelletier/go-toml/v2"
)

// Network says where the build steps (RUN) of a daemon pei starts may
// connect. The zero value is pei build's: steps share the host's network
// and a build may ask for it explicitly (network.host), as a proxy on the
// user's own machine needs.
type Network struct {
	// Isolate runs every build step in a network namespace of its own:
	// it reaches the internet (package mirrors) but neither the host's
	// loopback nor the host's other addresses, nor private, link-local
	// (cloud metadata) or shared address ranges, except those in Allow.
	// As root that is a bridge pei makes (CNI) with firewall rules pei
	// installs and removes; without root, rootlesskit's slirp4netns.
	Isolate bool
	// Allow lists destinations an isolated step may still reach, e.g. a
	// proxy on the worker host or a site's internal package mirror.
	Allow []netip.Prefix
	// HostAllowed lets an isolated daemon grant a build's explicit request
	// for the host's network (the network.host entitlement). Dangerous: such
	// a step reaches everything the host does.
	HostAllowed bool
}

// Isolation's fixed choices.
const (
	// CNIBinDir is where Debian's containernetworking-plugins put the CNI
	// plugins.
	CNIBinDir = "/usr/lib/cni"
	// lockDir holds one lock file per build network in use (root only).
	lockDir = "/run/pei-buildnet"
	// slirpDNS is the resolver rootlesskit's slirp4netns network offers.
	slirpDNS = "10.0.2.3"
)

// buildNets is where the /24 of each isolated daemon's bridge comes from
// (the Nth daemon gets 10.213.N.0/24, skipping any the host already uses).
var buildNets = netip.MustParsePrefix("10.213.0.0/16")

// deniedV4 are the networks beyond the host that an isolated step may not
// reach unless allowed: private, shared (CGNAT), link-local (cloud metadata
// services), loopback, multicast and reserved ranges. (The host itself is
// refused whatever its address.)
var deniedV4 = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
}

// isolation is what an isolated daemon needs while it runs, and what pei
// removes when it stops.
type isolation struct {
	bridge string
	subnet netip.Prefix
	lock   *os.File // held (also by the daemon) while the network is in use
	rules  []rule
}

// rule is one firewall rule. A jump rule is inserted at the top of a
// built-in chain; the others are appended, in order, to pei's own chains.
type rule struct {
	v6    bool
	table string
	chain string
	spec  []string
	jump  bool
}

// chainPrefix names pei's own chains for a bridge.
func chainPrefix(bridge string) string {
	return "PEI-" + strings.ToUpper(strings.TrimPrefix(bridge, "pei-"))
}

// rootRules are the firewall rules of an isolated root daemon's bridge:
// steps reach the host only at allowed addresses (or its resolvers' DNS
// port), other networks except the denied ranges, and nothing reaches the
// steps but replies. Outbound traffic is masqueraded. IPv6 is refused
// altogether (the bridge has IPv4 addresses only, but a link-local IPv6
// address would otherwise reach the host).
func rootRules(bridge string, subnet netip.Prefix, allow []netip.Prefix, dns []netip.Addr) []rule {
	p := chainPrefix(bridge)
	in, fwd, nat := p+"-IN", p+"-FWD", p+"-NAT"
	var rs []rule
	add := func(v6 bool, table, chain string, spec ...string) {
		rs = append(rs, rule{v6: v6, table: table, chain: chain, spec: spec})
	}
	jump := func(v6 bool, table, chain string, spec ...string) {
		rs = append(rs, rule{v6: v6, table: table, chain: chain, spec: spec, jump: true})
	}
	accepts := func(chain string) {
		for _, a := range allow {
			if a.Addr().Is4() {
				add(false, "filter", chain, "-d", a.String(), "-j", "ACCEPT")
			}
		}
		for _, ns := range dns {
			if ns.Is4() {
				for _, proto := range []string{"udp", "tcp"} {
					add(false, "filter", chain, "-d", ns.String()+"/32", "-p", proto, "--dport", "53", "-j", "ACCEPT")
				}
			}
		}
	}
	reject := func(v6 bool, chain string, match ...string) {
		// A refused TCP connection fails at once rather than timing out.
		add(v6, "filter", chain, append(append([]string{}, match...), "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")...)
		add(v6, "filter", chain, append(append([]string{}, match...), "-j", "REJECT")...)
	}
	// To the host: whatever the address (loopback is not routed here).
	accepts(in)
	reject(false, in)
	// Through the host: replies only towards the steps (other builds on
	// the bridge, when bridged traffic is filtered, included).
	add(false, "filter", fwd, "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	add(false, "filter", fwd, "-o", bridge, "-j", "DROP")
	accepts(fwd)
	for _, d := range deniedV4 {
		reject(false, fwd, "-d", d)
	}
	add(false, "filter", fwd, "-j", "ACCEPT")
	add(false, "nat", nat, "-d", subnet.String(), "-j", "RETURN")
	add(false, "nat", nat, "-j", "MASQUERADE")
	jump(false, "filter", "INPUT", "-i", bridge, "-j", in)
	jump(false, "filter", "FORWARD", "-i", bridge, "-j", fwd)
	jump(false, "filter", "FORWARD", "-o", bridge, "-j", fwd)
	jump(false, "nat", "POSTROUTING", "-s", subnet.String(), "-j", nat)
	reject(true, in)
	add(true, "filter", fwd, "-j", "DROP")
	jump(true, "filter", "INPUT", "-i", bridge, "-j", in)
	jump(true, "filter", "FORWARD", "-i", bridge, "-j", fwd)
	jump(true, "filter", "FORWARD", "-o", bridge, "-j", fwd)
	return rs
}

// rootlessRules are the iptables-restore input (IPv4, IPv6) that a rootless
// daemon's network namespace gets before buildkitd starts in it: the daemon
// and its steps share that namespace (slirp4netns), so its outbound
// traffic may reach slirp's resolver, the allowed destinations and
// anything but the host's addresses (hostAddrs) and the denied ranges.
func rootlessRules(allow []netip.Prefix, hostAddrs []netip.Addr) (v4, v6 string) {
	var b strings.Builder
	b.WriteString("*filter\n-A OUTPUT -o lo -j ACCEPT\n")
	for _, a := range allow {
		if a.Addr().Is4() {
			fmt.Fprintf(&b, "-A OUTPUT -d %s -j ACCEPT\n", a)
		}
	}
	for _, proto := range []string{"udp", "tcp"} {
		fmt.Fprintf(&b, "-A OUTPUT -d %s/32 -p %s --dport 53 -j ACCEPT\n", slirpDNS, proto)
	}
	var denied []string
	for _, a := range hostAddrs {
		if a.Is4() {
			denied = append(denied, a.String()+"/32")
		}
	}
	for _, d := range append(denied, deniedV4...) {
		fmt.Fprintf(&b, "-A OUTPUT -d %s -p tcp -j REJECT --reject-with tcp-reset\n-A OUTPUT -d %s -j REJECT\n", d, d)
	}
	b.WriteString("COMMIT\n")
	return b.String(), "*filter\n-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -j REJECT\nCOMMIT\n"
}

// firewall is one address family's iptables.
type firewall struct {
	v4, v6 *iptables.IPTables // v6 is nil on a host without IPv6
}

func newFirewall() (firewall, error) {
	var fw firewall
	var err error
	if fw.v4, err = iptables.NewWithProtocol(iptables.ProtocolIPv4); err != nil {
		return fw, fmt.Errorf("%w: isolating builds needs iptables (apt-get install iptables): %v", ErrMissing, err)
	}
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		if fw.v6, err = iptables.NewWithProtocol(iptables.ProtocolIPv6); err != nil {
			return fw, fmt.Errorf("%w: isolating builds needs ip6tables (apt-get install iptables): %v", ErrMissing, err)
		}
	}
	return fw, nil
}

func (fw firewall) of(r rule) *iptables.IPTables {
	if r.v6 {
		return fw.v6
	}
	return fw.v4
}

// apply installs rules: pei's chains are made (or emptied) and filled,
// then the jumps to them go first in the built-in chains.
func (fw firewall) apply(rules []rule) error {
	made := map[string]bool{}
	for _, r := range rules {
		t := fw.of(r)
		if t == nil {
			continue
		}
		if r.jump {
			continue
		}
		key := fmt.Sprint(r.v6, r.table, r.chain)
		if !made[key] {
			if err := t.ClearChain(r.table, r.chain); err != nil {
				return fmt.Errorf("firewall: make chain %s/%s: %w", r.table, r.chain, err)
			}
			made[key] = true
		}
		if err := t.Append(r.table, r.chain, r.spec...); err != nil {
			return fmt.Errorf("firewall: %s/%s %s: %w", r.table, r.chain, strings.Join(r.spec, " "), err)
		}
	}
	for _, r := range rules {
		if t := fw.of(r); t != nil && r.jump {
			if err := t.InsertUnique(r.table, r.chain, 1, r.spec...); err != nil {
				return fmt.Errorf("firewall: %s/%s %s: %w", r.table, r.chain, strings.Join(r.spec, " "), err)
			}
		}
	}
	return nil
}

// remove takes rules out again (jumps first, then pei's chains); rules
// already gone are no error, so it also clears what a crashed run left.
func (fw firewall) remove(rules []rule) error {
	var errs []error
	for _, r := range rules {
		t := fw.of(r)
		if t == nil || !r.jump {
			continue
		}
		// No jump can lead to a chain that is not there (and iptables
		// cannot even look for one).
		if ok, err := t.ChainExists(r.table, r.spec[len(r.spec)-1]); err != nil || !ok {
			continue
		}
		if err := t.DeleteIfExists(r.table, r.chain, r.spec...); err != nil {
			errs = append(errs, err)
		}
	}
	done := map[string]bool{}
	for _, r := range rules {
		t := fw.of(r)
		key := fmt.Sprint(r.v6, r.table, r.chain)
		if t == nil || r.jump || done[key] {
			continue
		}
		done[key] = true
		if ok, err := t.ChainExists(r.table, r.chain); err == nil && ok {
			if err := t.ClearAndDeleteChain(r.table, r.chain); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// nameservers are the resolvers isolated steps use: the host's, as
// BuildKit would pick them for a step in a network namespace (loopback
// ones dropped, systemd-resolved's upstreams behind its stub, public ones
// if none is left). pei pins them in the daemon's config so that the
// firewall lets exactly these through.
func nameservers() ([]netip.Addr, error) {
	path := "/etc/resolv.conf"
	rc, err := resolvconf.Load(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if ns := rc.NameServers(); len(ns) == 1 && ns[0] == netip.MustParseAddr("127.0.0.53") {
		if alt, err := resolvconf.Load("/run/systemd/resolve/resolv.conf"); err == nil {
			rc = alt
		}
	}
	rc.TransformForLegacyNw(false)
	return rc.NameServers(), nil
}

// hostPrefixes are the networks of the host's interfaces.
func hostPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("the host's addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// hostAddrs are the host's own addresses.
func hostAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("the host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !ip.Unmap().IsLoopback() {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// subnetFor is the Nth build network's /24.
func subnetFor(n int) netip.Prefix {
	b := buildNets.Addr().As4()
	b[2] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom4(b), 24)
}

// cniConfig is the single-plugin CNI configuration BuildKit reads (a
// plugin list is only taken from a file named *.conflist; the loopback
// interface BuildKit brings up itself). Masquerading and filtering are
// pei's own rules, so that a step's traffic passes them before any other.
func cniConfig(name, bridge string, subnet netip.Prefix, ipamDir string) ([]byte, error) {
	type rangeEntry struct {
		Subnet string `json:"subnet"`
	}
	return json.Marshal(map[string]any{
		"cniVersion":       "0.4.0",
		"name":             name,
		"type":             "bridge",
		"bridge":           bridge,
		"isDefaultGateway": true,
		"ipMasq":           false,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]rangeEntry{{{Subnet: subnet.String()}}},
			"dataDir": ipamDir,
		},
	})
}

// daemonConfig is the part of buildkitd.toml an isolated root daemon gets.
type daemonConfig struct {
	Worker struct {
		OCI struct {
			NetworkMode   string `toml:"networkMode"`
			CNIConfigPath string `toml:"cniConfigPath"`
			CNIBinaryPath string `toml:"cniBinaryPath"`
		} `toml:"oci"`
	} `toml:"worker"`
	DNS struct {
		Nameservers []string `toml:"nameservers"`
	} `toml:"dns"`
}

func daemonConfigTOML(cniConf string, dns []netip.Addr) ([]byte, error) {
	var c daemonConfig
	c.Worker.OCI.NetworkMode = "cni"
	c.Worker.OCI.CNIConfigPath = cniConf
	c.Worker.OCI.CNIBinaryPath = CNIBinDir
	for _, a := range dns {
		c.DNS.Nameservers = append(c.DNS.Nameservers, a.String())
	}
	return toml.Marshal(c)
}

// isolateRoot sets up the network of an isolated root daemon: a free
// build network (its lock file, which the daemon inherits so that the
// network stays taken while it runs), its CNI and daemon configuration in
// runDir and the firewall rules. It returns the daemon's extra arguments.
func isolateRoot(runDir string, n Network) (*isolation, []string, error) {
	if err := checkRootTools(); err != nil {
		return nil, nil, err
	}
	fw, err := newFirewall()
	if err != nil {
		return nil, nil, err
	}
	dns, err := nameservers()
	if err != nil {
		return nil, nil, err
	}
	taken, err := hostPrefixes()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("build network locks: %w", err)
	}
	iso := &isolation{}
	for i := 0; i < 256 && iso.lock == nil; i++ {
		subnet := subnetFor(i)
		if overlaps(subnet, taken) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(lockDir, strconv.Itoa(i)), os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("build network lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		iso.lock, iso.subnet, iso.bridge = f, subnet, "pei-bk"+strconv.Itoa(i)
	}
	if iso.lock == nil {
		return nil, nil, fmt.Errorf("no free build network in %s: every /24 is in use by the host or another isolated buildkitd", buildNets)
	}
	iso.rules = rootRules(iso.bridge, iso.subnet, n.Allow, dns)
	// What a daemon that held this network before and died left behind.
	if err := iso.clear(fw); err != nil {
		iso.lock.Close()
		return nil, nil, err
	}
	cniConf := filepath.Join(runDir, "cni.conf")
	conf, err := cniConfig(iso.bridge, iso.bridge, iso.subnet, filepath.Join(runDir, "ipam"))
	if err == nil {
		err = os.WriteFile(cniConf, conf, 0o600)
	}
	var daemonConf []byte
	if err == nil {
		daemonConf, err = daemonConfigTOML(cniConf, dns)
	}
	cfgPath := filepath.Join(runDir, "buildkitd.toml")
	if err == nil {
		err = os.WriteFile(cfgPath, daemonConf, 0o600)
	}
	if err == nil {
		err = fw.apply(iso.rules)
	}
	if err == nil {
		err = makeBridge(iso.bridge, iso.subnet)
	}
	if err != nil {
		iso.teardown()
		return nil, nil, err
	}
	return iso, []string{"--config", cfgPath}, nil
}

// makeBridge makes the bridge with its gateway address, which the CNI
// bridge plugin then uses: it is there from the start (BuildKit makes its
// first namespace in the background) and it is pei's to remove.
func makeBridge(name string, subnet netip.Prefix) error {
	gw := netip.PrefixFrom(subnet.Addr().Next(), subnet.Bits())
	for _, args := range [][]string{
		{"link", "add", name, "type", "bridge"},
		{"addr", "add", gw.String(), "dev", name},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("build network: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// clear removes the bridge and the firewall rules of iso's network.
func (iso *isolation) clear(fw firewall) error {
	err := fw.remove(iso.rules)
	if _, lerr := net.InterfaceByName(iso.bridge); lerr == nil {
		if out, lerr := exec.Command("ip", "link", "delete", iso.bridge).CombinedOutput(); lerr != nil {
			err = errors.Join(err, fmt.Errorf("remove bridge %s: %v: %s", iso.bridge, lerr, out))
		}
	}
	if err != nil {
		return fmt.Errorf("clear build network %s: %w", iso.bridge, err)
	}
	return nil
}

// teardown removes what isolateRoot made and frees the network.
func (iso *isolation) teardown() error {
	if iso == nil || iso.lock == nil {
		return nil
	}
	fw, err := newFirewall()
	if err == nil {
		err = iso.clear(fw)
	}
	iso.lock.Close()
	iso.lock = nil
	return err
}

func overlaps(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// rootlessNetwork returns the rootlesskit arguments and the command
// wrapper that put a rootless daemon in a network namespace of its own
// (slirp4netns, no way to the host's loopback) whose firewall is set
// before buildkitd starts.
func rootlessNetwork(runDir string, n Network) (rkArgs, wrapper []string, err error) {
	if err := checkRootlessTools(); err != nil {
		return nil, nil, err
	}
	restore4, err := lookSbin("iptables-restore")
	if err != nil {
		return nil, nil, err
	}
	restore6 := "true"
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		if restore6, err = lookSbin("ip6tables-restore"); err != nil {
			return nil, nil, err
		}
	}
	addrs, err := hostAddrs()
	if err != nil {
		return nil, nil, err
	}
	v4, v6 := rootlessRules(n.Allow, addrs)
	f4, f6 := filepath.Join(runDir, "rules.v4"), filepath.Join(runDir, "rules.v6")
	if err := os.WriteFile(f4, []byte(v4), 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(f6, []byte(v6), 0o600); err != nil {
		return nil, nil, err
	}
	rkArgs = []string{"--net=slirp4netns", "--disable-host-loopback"}
	wrapper = []string{"/bin/sh", "-ec", `"$3" <"$1"; "$4" <"$2"; shift 4; exec "$@"`, "pei-buildnet", f4, f6, restore4, restore6}
	return rkArgs, wrapper, nil
}

// CheckTools says what isolating builds as this user lacks, if anything:
// a worker checks before it takes builds that would all fail.
func CheckTools() error {
	if os.Geteuid() == 0 {
		if err := checkRootTools(); err != nil {
			return err
		}
		_, err := newFirewall()
		return err
	}
	return checkRootlessTools()
}

func checkRootTools() error {
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(CNIBinDir, p)); err != nil {
			return fmt.Errorf("%w: isolating builds needs the CNI %s plugin in %s (apt-get install containernetworking-plugins)", ErrMissing, p, CNIBinDir)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: isolating builds needs ip (apt-get install iproute2)", ErrMissing)
	}
	return nil
}

func checkRootlessTools() error {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		return fmt.Errorf("%w: isolating builds without root needs slirp4netns (apt-get install slirp4netns)", ErrMissing)
	}
	tun, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: isolating builds without root needs /dev/net/tun open to you for slirp4netns (Debian's udev makes it mode 0666): %v", ErrMissing, err)
	}
	tun.Close()
	for _, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		if _, err := lookSbin(tool); err != nil {
			return err
		}
	}
	return nil
}

// lookSbin finds an administration tool, also where an ordinary user's
// PATH does not look.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: isolating builds needs %s (apt-get install iptables)", ErrMissing, name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// ErrNotIsolated is matched by the error of CheckIsolated.
var ErrNotIsolated = errors.New("the BuildKit daemon runs build steps on its host's network")

// CheckIsolated returns an error unless the daemon runs build steps in
// network namespaces of their own: one pei started isolated does; another
// must say so (its workers' network is cni).
func (d *Daemon) CheckIsolated(ctx context.Context, c *bkclient.Client) error {
	if d.isolated {
		return nil
	}
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("ask buildkitd at %s for its workers: %w", d.Addr, err)
	}
	if len(ws) == 0 {
		return fmt.Errorf("buildkitd at %s has no workers", d.Addr)
	}
	for _, w := range ws {
		if mode := w.Labels[label.Network]; mode != "cni" {
			return fmt.Errorf("%w (%s at %s; network %q): give the worker --builder auto, or configure that daemon with networkMode = \"cni\" (docs/serve.md, Build isolation)", ErrNotIsolated, w.ID, d.Addr, mode)
		}
	}
	return nil
}

// BuildNetwork is the bridge and subnet of a daemon pei started isolated
// as root; ok is false for any other daemon.
func (d *Daemon) BuildNetwork() (bridge string, subnet netip.Prefix, ok bool) {
	if d == nil || d.iso == nil {
		return "", netip.Prefix{}, false
	}
	return d.iso.bridge, d.iso.subnet, true
}
