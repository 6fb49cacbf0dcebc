package config

import (
	"strings"
	"testing"
)

// TestPortRange: every port number a config names is 1-65535, in port
// mappings (both sides, ranges included) and in the SSH and proxy
// sections; the ends of the range are accepted. A range runs upwards, and
// a container range has as many ports as the host range it is mapped from.
func TestPortRange(t *testing.T) {
	for _, tc := range []struct {
		name, section string
		want          string // "" is valid
	}{
		{"lowest and highest mapping", "  ports: ['1:1', '65535:65535/udp']", ""},
		{"container ports only", "  ports: ['80', '81', '53/udp']", ""},
		{"host range at the top", "  ports: ['65534-65535:80-81']", ""},
		{"host port over the range", "  ports: ['65536:80']", `stage_1.ports[0]: 65536 in "65536:80" is not a port number (1-65535)`},
		{"container port over the range", "  ports: ['8080:65536']", `stage_1.ports[0]: 65536 in "8080:65536" is not a port number (1-65535)`},
		{"range ending over the range", "  ports: ['65535-65536:80-81']", `65536 in "65535-65536:80-81" is not a port number (1-65535)`},
		{"port zero", "  ports: ['0:80']", `0 in "0:80" is not a port number (1-65535)`},
		{"ranges of one length", "  ports: ['9000-9010:8000-8010', '127.0.0.1:7000-7001:70-71/udp']", ""},
		{"host range onto one container port", "  ports: ['9000-9010:80']", ""},
		{"container range alone", "  ports: ['8000-8010']", ""},
		{"host range reversed", "  ports: ['8080:80', '9010-9000:80-90']", `user_config.yml:3:22: stage_1.ports[1]: 9010-9000 in "9010-9000:80-90" is not a range: the first port is above the last`},
		{"container range reversed", "  ports: ['9000-9010:90-80']", `user_config.yml:3:11: stage_1.ports[0]: 90-80 in "9000-9010:90-80" is not a range: the first port is above the last`},
		{"container range alone reversed", "  ports: ['8010-8000/udp']", `user_config.yml:3:11: stage_1.ports[0]: 8010-8000 in "8010-8000/udp" is not a range: the first port is above the last`},
		{"ranges of different lengths", "  ports: ['9000-9010:80-85']", `user_config.yml:3:11: stage_1.ports[0]: "9000-9010:80-85" maps 11 host ports onto 6 container ports; give ranges of the same length on both sides`},
		{"one host port onto a container range", "  ports: ['127.0.0.1:8080:80-81']", `user_config.yml:3:11: stage_1.ports[0]: "127.0.0.1:8080:80-81" maps 1 host port onto 2 container ports`},
		{"ssh ports at the ends", "  ssh: {port: 1, host_port: 65535}", ""},
		{"ssh ports at the other ends", "  ssh: {port: 65535, host_port: 1}", ""},
		{"ssh port over the range", "  ssh: {port: 65536}", "stage_1.ssh.port: 65536 is not a port number (1-65535)"},
		{"ssh host port zero", "  ssh: {host_port: 0}", "stage_1.ssh.host_port: 0 is not a port number (1-65535)"},
		{"proxy port at the top", "  proxy: {address: proxy.example, port: 65535}", ""},
		{"proxy port at the bottom", "  proxy: {address: proxy.example, port: 1}", ""},
		{"proxy port over the range", "  proxy: {address: proxy.example, port: 65536}", "stage_1.proxy.port: 65536 is not a port number (1-65535)"},
		{"proxy port zero", "  proxy: {address: proxy.example, port: 0}", "stage_1.proxy.port: 0 is not a port number (1-65535)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\n"+tc.section+"\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid ports refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
