package config

import (
	"strings"
	"testing"
)

// TestProxyPortRequired: a proxy that is used (enable_globally, or apt's
// use_proxy) needs a port, its own or, for stage 2, stage 1's.
func TestProxyPortRequired(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
		want      string // "" is valid
	}{
		{"used, with a port", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {port: 3128, enable_globally: true}\n", ""},
		{"used by apt, with a port", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {port: 3128}\n  apt: {use_proxy: true}\n", ""},
		{"not used, without a port", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {address: proxy.example}\n", ""},
		{"stage 2 inherits stage 1's port", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {port: 3128}\nstage_2:\n  proxy: {enable_globally: true}\n", ""},
		{"used, without a port", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {enable_globally: true}\n", "stage_1.proxy.port: a proxy port is required"},
		{"used by apt, without a port", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {address: proxy.example}\n  apt: {use_proxy: true}\n", "stage_1.proxy.port: a proxy port is required"},
		{"stage 2 with nothing to inherit", "stage_1:\n  image: {base: debian:bookworm}\nstage_2:\n  proxy: {enable_globally: true}\n", "stage_2.proxy.port: a proxy port is required"},
		{"an address with a port in it", "stage_1:\n  image: {base: debian:bookworm}\n  proxy: {address: 'proxy.example/x', port: 3128}\n", `stage_1.proxy.address: "proxy.example/x" is not a host name or address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "", tc.yml, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid proxy refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
