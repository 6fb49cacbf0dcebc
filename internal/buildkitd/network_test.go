package buildkitd

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"

	"github.com/pei-dev/pei/internal/testenv"
)

// The daemon configuration pei writes is read by buildkitd's own loader as
// a CNI worker with pei's plugins and resolvers.
func TestDaemonConfigTOML(t *testing.T) {
	dns := []netip.Addr{netip.MustParseAddr("10.255.255.53"), netip.MustParseAddr("8.8.8.8")}
	b, err := daemonConfigTOML("/run/x/cni.conf", dns)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "buildkitd.toml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadFile(path)
	if err != nil {
		t.Fatalf("buildkitd cannot load %s: %v", b, err)
	}
	oci := c.Workers.OCI
	if oci.Mode != "cni" || oci.CNIConfigPath != "/run/x/cni.conf" || oci.CNIBinaryPath != CNIBinDir {
		t.Errorf("worker network %+v from\n%s", oci.NetworkConfig, b)
	}
	if c.DNS == nil || !slices.Equal(c.DNS.Nameservers, []string{"10.255.255.53", "8.8.8.8"}) {
		t.Errorf("dns %+v from\n%s", c.DNS, b)
	}
}

// The CNI configuration is one bridge plugin (BuildKit refuses a plugin
// list in a file not named *.conflist) without the plugin's own masquerade.
func TestCNIConfig(t *testing.T) {
	b, err := cniConfig("pei-bk3", "pei-bk3", subnetFor(3), "/run/x/ipam")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Type, Bridge string
		IPMasq       bool
		IPAM         struct {
			Type    string
			Ranges  [][]struct{ Subnet string }
			DataDir string
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Type != "bridge" || c.Bridge != "pei-bk3" || c.IPMasq || c.IPAM.Type != "host-local" ||
		len(c.IPAM.Ranges) != 1 || c.IPAM.Ranges[0][0].Subnet != "10.213.3.0/24" || c.IPAM.DataDir != "/run/x/ipam" {
		t.Errorf("CNI config %s", b)
	}
}

func TestSubnetFor(t *testing.T) {
	docker := netip.MustParsePrefix("172.17.0.0/16")
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "10.213.0.0/24"}, {7, "10.213.7.0/24"}, {255, "10.213.255.0/24"}} {
		got := subnetFor(tc.n)
		if got.String() != tc.want {
			t.Errorf("subnetFor(%d) = %s, want %s", tc.n, got, tc.want)
		}
		if overlaps(got, []netip.Prefix{docker}) {
			t.Errorf("%s overlaps docker0's %s", got, docker)
		}
	}
	if !overlaps(subnetFor(4), []netip.Prefix{netip.MustParsePrefix("10.213.0.0/21")}) {
		t.Error("a /24 inside a host network is not seen to overlap it")
	}
}

// ruleSpecs lists a rule set as "table chain spec" lines, for one family.
func ruleSpecs(rs []rule, v6 bool) []string {
	var out []string
	for _, r := range rs {
		if r.v6 == v6 {
			out = append(out, r.table+" "+r.chain+" "+strings.Join(r.spec, " "))
		}
	}
	return out
}

func TestRootRules(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("fd00::/8")}
	dns := []netip.Addr{netip.MustParseAddr("10.255.255.53")}
	rs := rootRules("pei-bk3", subnetFor(3), allow, dns)
	v4 := ruleSpecs(rs, false)
	index := func(list []string, want string) int {
		t.Helper()
		i := slices.Index(list, want)
		if i < 0 {
			t.Fatalf("no rule %q in\n%s", want, strings.Join(list, "\n"))
		}
		return i
	}
	// The steps' traffic to the host and through it is pei's to judge.
	index(v4, "filter INPUT -i pei-bk3 -j PEI-BK3-IN")
	index(v4, "filter FORWARD -i pei-bk3 -j PEI-BK3-FWD")
	index(v4, "filter FORWARD -o pei-bk3 -j PEI-BK3-FWD")
	index(v4, "nat POSTROUTING -s 10.213.3.0/24 -j PEI-BK3-NAT")
	// Allowed destinations and the resolvers come before the refusals.
	for _, chain := range []string{"PEI-BK3-IN", "PEI-BK3-FWD"} {
		allowed := index(v4, "filter "+chain+" -d 198.18.1.0/24 -j ACCEPT")
		dnsAt := index(v4, "filter "+chain+" -d 10.255.255.53/32 -p udp --dport 53 -j ACCEPT")
		for i, r := range v4 {
			if strings.HasPrefix(r, "filter "+chain+" ") && strings.Contains(r, "REJECT") && (i < allowed || i < dnsAt) {
				t.Errorf("%q comes before the allowed destinations", r)
			}
		}
	}
	// The host is refused whatever the address; the private ranges too.
	if last := v4[slices.IndexFunc(v4, func(r string) bool { return strings.HasPrefix(r, "filter PEI-BK3-IN -j") })]; last != "filter PEI-BK3-IN -j REJECT" {
		t.Errorf("the input chain ends with %q", last)
	}
	for _, d := range []string{"10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"} {
		index(v4, "filter PEI-BK3-FWD -d "+d+" -j REJECT")
	}
	// Nothing new reaches a step from outside (or from another step).
	if index(v4, "filter PEI-BK3-FWD -o pei-bk3 -j DROP") > index(v4, "filter PEI-BK3-FWD -j ACCEPT") {
		t.Error("the forward chain accepts traffic to the steps")
	}
	if slices.ContainsFunc(v4, func(r string) bool { return strings.Contains(r, "fd00::") }) {
		t.Error("an IPv6 destination in the IPv4 rules")
	}
	v6 := ruleSpecs(rs, true)
	index(v6, "filter INPUT -i pei-bk3 -j PEI-BK3-IN")
	index(v6, "filter PEI-BK3-IN -j REJECT")
	index(v6, "filter PEI-BK3-FWD -j DROP")
}

// The rootless rules are valid iptables-restore input, checked by
// iptables-restore itself in a throwaway network namespace.
func TestRootlessRules(t *testing.T) {
	testenv.Tools(t, "unshare", "iptables-restore", "ip6tables-restore")
	v4, v6 := rootlessRules([]netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")},
		[]netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("fd00::2")})
	for _, want := range []string{
		"-A OUTPUT -d 198.18.1.0/24 -j ACCEPT\n",
		"-A OUTPUT -d 10.0.2.3/32 -p udp --dport 53 -j ACCEPT\n",
		"-A OUTPUT -d 192.0.2.2/32 -j REJECT\n",
		"-A OUTPUT -d 10.0.0.0/8 -j REJECT\n",
	} {
		if !strings.Contains(v4, want) {
			t.Errorf("IPv4 rules lack %q:\n%s", want, v4)
		}
	}
	if strings.Index(v4, "198.18.1.0/24") > strings.Index(v4, "REJECT") {
		t.Errorf("an allowed destination after a refusal:\n%s", v4)
	}
	for tool, rules := range map[string]string{"iptables-restore": v4, "ip6tables-restore": v6} {
		cmd := exec.Command("unshare", "--user", "--map-root-user", "--net", tool, "--test")
		cmd.Stdin = strings.NewReader(rules)
		cmd.Env = append(os.Environ(), "XTABLES_LOCKFILE="+filepath.Join(t.TempDir(), "lock"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s refuses the rules: %v\n%s\n%s", tool, err, out, rules)
		}
	}
}

// An isolated root daemon gets its bridge network and firewall rules, and
// takes them away when it stops; a second one at once gets another network.
func TestIsolatedDaemonLifecycle(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "buildkitd", "runc", "iptables", "ip")
	if _, err := os.Stat(filepath.Join(CNIBinDir, "bridge")); err != nil {
		testenv.Missing(t, "containernetworking-plugins is not installed")
	}
	ctx := t.Context()
	a, err := Start(ctx, t.TempDir(), Network{Isolate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := Start(ctx, t.TempDir(), Network{Isolate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	if a.iso.bridge == b.iso.bridge || a.iso.subnet.Overlaps(b.iso.subnet) {
		t.Fatalf("two daemons share a network: %s %s, %s %s", a.iso.bridge, a.iso.subnet, b.iso.bridge, b.iso.subnet)
	}
	present := func(d *Daemon) (rules bool, bridge bool) {
		out, err := exec.Command("iptables", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -S: %v\n%s", err, out)
		}
		_, lerr := net.InterfaceByName(d.iso.bridge)
		return strings.Contains(string(out), "-A INPUT -i "+d.iso.bridge+" -j "+chainPrefix(d.iso.bridge)+"-IN"), lerr == nil
	}
	if rules, bridge := present(a); !rules || !bridge {
		t.Fatalf("daemon a's network %s: rules %v, bridge %v", a.iso.bridge, rules, bridge)
	}
	iso := a.iso
	if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	rules, bridge := present(&Daemon{iso: iso})
	if rules || bridge {
		t.Errorf("after stop, network %s: rules %v, bridge %v", iso.bridge, rules, bridge)
	}
	if rules, bridge := present(b); !rules || !bridge {
		t.Errorf("stopping a took b's network %s: rules %v, bridge %v", b.iso.bridge, rules, bridge)
	}
}

// A daemon pei did not start is trusted with a tenant's build only if its
// workers run steps in network namespaces of their own (network cni).
func TestCheckIsolated(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "buildkitd", "runc", "iptables", "ip")
	if _, err := os.Stat(filepath.Join(CNIBinDir, "bridge")); err != nil {
		testenv.Missing(t, "containernetworking-plugins is not installed")
	}
	for _, tc := range []struct {
		name     string
		n        Network
		isolated bool
	}{
		{"host network", Network{}, false},
		{"isolated", Network{Isolate: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Start(t.Context(), t.TempDir(), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Stop()
			c, err := bkclient.New(t.Context(), d.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// As a worker given --builder ADDR sees it.
			err = (&Daemon{Addr: d.Addr}).CheckIsolated(t.Context(), c)
			if (err == nil) != tc.isolated || err != nil && !errors.Is(err, ErrNotIsolated) {
				t.Errorf("CheckIsolated: %v, want isolated %v", err, tc.isolated)
			}
			if err := d.CheckIsolated(t.Context(), c); (err == nil) != tc.isolated {
				t.Errorf("CheckIsolated of the daemon pei started: %v", err)
			}
		})
	}
}

// A machine without the isolation tools is told which is missing.
func TestCheckToolsMissing(t *testing.T) {
	if err := CheckTools(); err != nil {
		testenv.Missing(t, "this machine cannot isolate builds: "+err.Error())
	}
	t.Setenv("PATH", t.TempDir())
	err := CheckTools()
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("with an empty PATH: %v", err)
	}
}
