package config

import (
	"strings"
	"testing"
)

// TestStageMounts: both stages take mount and storage, as PeiDocker's do;
// a mount on a container path another mount or a mounted storage directory
// of the same stage already uses is refused (Docker would not start it).
func TestStageMounts(t *testing.T) {
	const head = "stage_1:\n  image: {base: debian:bookworm}\n"
	for _, tc := range []struct {
		name, yml string
		want      []string // substrings of the error; none means valid
	}{
		{"stage-1 mount", head + "  mount:\n    apt_cache: {type: auto-volume, dst_path: /var/cache/apt}\n", nil},
		{"stage-1 storage", head + "  storage:\n    app: {type: auto-volume}\n", nil},
		{"both stages on one path", head + "  mount:\n    a: {type: auto-volume, dst_path: /x}\nstage_2:\n  mount:\n    b: {type: auto-volume, dst_path: /x}\n", nil},
		{"stage-1 mount without dst_path", head + "  mount:\n    a: {type: auto-volume}\n",
			[]string{"stage_1.mount.a.dst_path: dst_path is required"}},
		{"stage-1 mount of a bad type", head + "  mount:\n    a: {type: image, dst_path: /x}\n",
			[]string{"stage_1.mount.a.type: "}},
		{"stage-1 storage of a bad type", head + "  storage:\n    app: {type: tmpfs}\n",
			[]string{"stage_1.storage.app.type: "}},
		{"two stage-1 mounts on one path", head + "  mount:\n    a: {type: auto-volume, dst_path: /x}\n    b: {type: auto-volume, dst_path: /x/}\n",
			[]string{`stage_1.mount.b.dst_path: /x is already the target of mount "a"`}},
		{"a stage-2 mount on a storage volume", head + "stage_2:\n  storage:\n    data: {type: auto-volume}\n  mount:\n    d: {type: auto-volume, dst_path: /hard/volume/data}\n",
			[]string{"stage_2.mount.d.dst_path: /hard/volume/data is already the target of storage data"}},
		{"a stage-2 mount where storage is in the image", head + "stage_2:\n  storage:\n    data: {type: image}\n  mount:\n    d: {type: auto-volume, dst_path: /hard/volume/data}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "", tc.yml, nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
