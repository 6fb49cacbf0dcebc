package service

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestSubmitStage: stage= of a pei project names a stage the recipe's
// user_config.yml has: 1, 2 and all always, final when it has a final
// image, a composed image by name; any other is refused at submission.
func TestSubmitStage(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxActive = 100 })
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	const base = "stage_1:\n  image: {base: debian:bookworm, output: 'app:stage-1'}\nstage_2:\n  image: {output: 'app:stage-2'}\n"
	withFinal := tarGz(t, map[string]string{"user_config.yml": base + "  final: {keep: [/opt/app]}\ncompose:\n  rt:\n    output: 'rt:1'\n    layers: [{image: 'app:stage-1'}]\n"})
	plain := tarGz(t, map[string]string{"user_config.yml": base})
	for _, tc := range []struct {
		name, stage string
		recipe      []byte
		status      int
		msg         string
	}{
		{"default", "", plain, http.StatusAccepted, ""},
		{"stage 1", "1", plain, http.StatusAccepted, ""},
		{"all", "all", plain, http.StatusAccepted, ""},
		{"final, which the recipe has", "final", withFinal, http.StatusAccepted, ""},
		{"a composed image the recipe has", "rt", withFinal, http.StatusAccepted, ""},
		{"final, which the recipe lacks", "final", plain, http.StatusBadRequest, `stage "final": the recipe's user_config.yml has no final image`},
		{"a composed image the recipe lacks", "rt", plain, http.StatusBadRequest, `stage "rt": the recipe's user_config.yml has no rt image`},
		{"not a stage name", "../x", plain, http.StatusBadRequest, `stage "../x": use 1, 2, final, all or a name under compose`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"platform": {"linux/amd64"}}
			if tc.stage != "" {
				q.Set("stage", tc.stage)
			}
			resp := h.req("POST", "/v2/team-a/app/_pei/builds?"+q.Encode(), alice, bytes.NewReader(tc.recipe))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, errorCode(t, resp))
			}
			if tc.msg == "" {
				if v := decode[api.BuildView](t, resp); v.Kind != "pei" || v.Stage != tc.stage {
					t.Fatalf("build of kind %s, stage %q; want pei, %q", v.Kind, v.Stage, tc.stage)
				}
				return
			}
			if msg := errorCode(t, resp); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q does not say %q", msg, tc.msg)
			}
		})
	}
}
