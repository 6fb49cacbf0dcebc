package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestPortClashes: two published ports clash when they bind the same host
// port of the same protocol on the same (or an unspecified) address; ranges
// clash when they overlap. tcp and udp never clash with each other.
func TestPortClashes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ssh    int // stage_1.ssh.host_port, 0 for none
		stage1 []string
		stage2 []string
		clash  string // what the error says, "" for no error
	}{
		{name: "tcp and udp on one port", stage1: []string{"8080:80/tcp", "8080:80/udp"}},
		{name: "udp and the default tcp", stage1: []string{"8080:80/udp"}, stage2: []string{"8080:80"}},
		{name: "different addresses", stage1: []string{"127.0.0.1:8080:80", "127.0.0.2:8080:80"}},
		{name: "IPv6 and IPv4 addresses", stage1: []string{"[::1]:8080:80", "127.0.0.1:8080:80"}},
		{name: "container ports only", stage1: []string{"80", "80/udp"}, stage2: []string{"80"}},
		{name: "range next to a port", stage1: []string{"8080-8090:80-90"}, stage2: []string{"8091:91"}},
		{name: "adjacent ranges", stage1: []string{"8080-8090:80-90", "8091-8095:91-95"}},
		{name: "udp range over a tcp port", stage1: []string{"8080-8090:80-90/udp"}, stage2: []string{"8085:85"}},
		{name: "ssh port and udp", ssh: 2222, stage2: []string{"2222:22/udp"}},

		{name: "default tcp and explicit tcp", stage1: []string{"8080:80", "8080:81/tcp"}, clash: "stage_1.ports[1]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "udp twice", stage1: []string{"8080:80/udp"}, stage2: []string{"8080:81/udp"}, clash: "stage_2.ports[0]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "every address and one", stage1: []string{"8080:80"}, stage2: []string{"127.0.0.1:8080:81"}, clash: "stage_2.ports[0]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "one address and every address", stage1: []string{"127.0.0.1:8080:81", "0.0.0.0:8080:80"}, clash: "stage_1.ports[1]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "same address", stage1: []string{"127.0.0.1:8080:80", "127.0.0.1:8080:81"}, clash: "stage_1.ports[1]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "same IPv6 address", stage1: []string{"[::1]:8080:80", "[::1]:8080:81"}, clash: "stage_1.ports[1]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "IPv6 address and every address", stage1: []string{"[::1]:8080:80"}, stage2: []string{"8080:81"}, clash: "stage_2.ports[0]: host port 8080 is already published by stage_1.ports[0]"},
		{name: "port inside a range", stage1: []string{"8080-8090:80-90"}, stage2: []string{"8085:85"}, clash: "stage_2.ports[0]: host port 8085 is already published by stage_1.ports[0]"},
		{name: "range over a port", stage1: []string{"8085:85"}, stage2: []string{"8080-8090:80-90"}, clash: "stage_2.ports[0]: host port 8080-8090 is already published by stage_1.ports[0]"},
		{name: "ranges sharing an end", stage1: []string{"8080-8090:80-90", "8090-8095:90-95"}, clash: "stage_1.ports[1]: host port 8090-8095 is already published by stage_1.ports[0]"},
		{name: "udp ranges", stage1: []string{"8080-8090:80-90/udp"}, stage2: []string{"8085:85/udp"}, clash: "stage_2.ports[0]: host port 8085 is already published by stage_1.ports[0]"},
		{name: "ssh port", ssh: 2222, stage2: []string{"2222:22"}, clash: "stage_2.ports[0]: host port 2222 is already published by stage_1.ssh.host_port"},
		{name: "ssh port in a range", ssh: 2222, stage2: []string{"2220-2230:20-30/tcp"}, clash: "stage_2.ports[0]: host port 2220-2230 is already published by stage_1.ssh.host_port"},
		{name: "range running backwards", stage1: []string{"8090-8080:80-90"}, clash: `stage_1.ports[0]: 8090-8080 in "8090-8080:80-90" is not a range: the first port is above the last`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var y strings.Builder
			y.WriteString("stage_1:\n  image: {base: debian:bookworm}\n")
			if tc.ssh != 0 {
				y.WriteString("  ssh: {host_port: " + strconv.Itoa(tc.ssh) + "}\n")
			}
			y.WriteString("  ports: " + flow(tc.stage1) + "\nstage_2:\n  ports: " + flow(tc.stage2) + "\n")
			_, err := parse(t, project(t), y.String(), nil)
			switch {
			case tc.clash == "" && err != nil:
				t.Fatalf("no clash expected:\n%s\n%v", y.String(), err)
			case tc.clash != "" && err == nil:
				t.Fatalf("clash not found:\n%s", y.String())
			case tc.clash != "" && !strings.Contains(err.Error(), tc.clash):
				t.Fatalf("error %q does not say %q", err, tc.clash)
			case strings.Contains(tc.clash, "already published") && strings.Count(err.Error(), "already published") != 1:
				t.Fatalf("one clash reported more than once: %v", err)
			}
		})
	}
}

func flow(ports []string) string {
	q := make([]string, len(ports))
	for i, p := range ports {
		q[i] = "'" + p + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
