package config

import (
	"strings"
	"testing"
)

// TestHostPathStaysInProject: a relative host_path of stage-2 storage or
// of a mount is taken from the project directory and may not climb out of
// it; absolute paths and ${VAR} paths (resolved by Compose) are the way to
// name a directory elsewhere. No host_path holds ':' outside a variable:
// docker compose gives the engine a bind it may create as SOURCE:TARGET:MODE.
func TestHostPathStaysInProject(t *testing.T) {
	for _, tc := range []struct {
		name, section string
		want          string // "" is valid
	}{
		{"storage inside", "  storage:\n    app: {type: host, host_path: ./app}", ""},
		{"storage absolute", "  storage:\n    app: {type: host, host_path: /srv/app}", ""},
		{"storage from a variable", "  storage:\n    app: {type: host, host_path: '{{HOME}}/app'}", ""},
		{"storage climbing out", "  storage:\n    app: {type: host, host_path: ../outside}", `stage_2.storage.app.host_path: "../outside" leaves the project directory`},
		{"storage climbing out from inside", "  storage:\n    data: {type: host, host_path: data/../../x}", `stage_2.storage.data.host_path: "data/../../x" leaves the project directory`},
		{"mount climbing out", "  mount:\n    m: {type: host, host_path: ../../etc, dst_path: /mnt}", `stage_2.mount.m.host_path: "../../etc" leaves the project directory`},
		{"mount inside", "  mount:\n    m: {type: host, host_path: shared, dst_path: /mnt}", ""},
		{"storage with a colon", "  storage:\n    app: {type: host, host_path: '/srv/a:b'}", `user_config.yml:5:34: stage_2.storage.app.host_path: "/srv/a:b" holds ':', which Docker takes as the end of the host path of a bind mount`},
		{"relative storage with a colon", "  storage:\n    data: {type: host, host_path: 'c:data'}", `user_config.yml:5:35: stage_2.storage.data.host_path: "c:data" holds ':'`},
		{"mount with a colon", "  mount:\n    m: {type: host, host_path: '/data/x:y', dst_path: /mnt}", `user_config.yml:5:32: stage_2.mount.m.host_path: "/data/x:y" holds ':'`},
		{"colon only in a default", "  mount:\n    m: {type: host, host_path: '${DATA:-/srv/data}/x', dst_path: /mnt}", ""},
		{"colon only in a run-time variable's default", "  mount:\n    m: {type: host, host_path: '{{DATA:-/srv/data}}/x', dst_path: /mnt}", ""},
		{"colon after a variable", "  mount:\n    m: {type: host, host_path: '{{HOME}}/a:b', dst_path: /mnt}", `stage_2.mount.m.host_path: "${HOME}/a:b" holds ':'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\nstage_2:\n"+tc.section+"\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("host_path refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
