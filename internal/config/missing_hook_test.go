package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingHookScript: a hook script that does not exist is an error, in
// a project read from a directory and through an fs.FS alike, and the
// message says that PeiDocker would have let it through to fail later. A
// missing key file has no such note: PeiDocker reads those when it
// configures.
func TestMissingHookScript(t *testing.T) {
	const note = "; PeiDocker would have accepted the config and failed later, at build or start"
	for _, tc := range []struct {
		name, section, want string
		noted               bool
	}{
		{"on_build", "  custom:\n    on_build: ['stage-1/custom/nope.sh --flag']",
			"user_config.yml:4:16: stage_1.custom.on_build[0]: installation/stage-1/custom/nope.sh does not exist (paths are relative to installation/ in the project)", true},
		{"on_first_run", "  custom:\n    on_first_run: [stage-1/custom/ok.sh, stage-1/custom/gone.sh]",
			"user_config.yml:4:42: stage_1.custom.on_first_run[1]: installation/stage-1/custom/gone.sh does not exist", true},
		{"on_every_run", "  custom:\n    on_every_run: [stage-1/custom/gone.sh]",
			"stage_1.custom.on_every_run[0]: installation/stage-1/custom/gone.sh does not exist", true},
		{"on_user_login", "  custom:\n    on_user_login: [stage-1/custom/gone.sh]",
			"stage_1.custom.on_user_login[0]: installation/stage-1/custom/gone.sh does not exist", true},
		{"on_entry", "  custom:\n    on_entry: [stage-1/custom/gone.sh]",
			"stage_1.custom.on_entry[0]: installation/stage-1/custom/gone.sh does not exist", true},
		{"public key file", "  ssh:\n    users:\n      me: {pubkey_file: stage-1/keys/gone.pub}",
			"user_config.yml:5:25: stage_1.ssh.users.me.pubkey_file: installation/stage-1/keys/gone.pub does not exist (paths are relative to installation/ in the project)", false},
		{"present script", "  custom:\n    on_build: [stage-1/custom/ok.sh]", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, "stage-1/custom/ok.sh")
			y := "stage_1:\n  image: {base: debian:bookworm}\n" + tc.section + "\n"
			if err := os.WriteFile(filepath.Join(dir, DefaultFile), []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, load := range []struct {
				how  string
				opts LoadOptions
			}{{"directory", LoadOptions{ProjectDir: dir, File: DefaultFile}}, {"fs.FS", LoadOptions{FS: os.DirFS(dir)}}} {
				_, err := Load(load.opts)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("%s: valid hook refused: %v", load.how, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("%s: no error", load.how)
				}
				msg := err.Error()
				if !strings.Contains(msg, strings.TrimPrefix(tc.want, "user_config.yml")) {
					t.Errorf("%s: error %q, want it to say %q", load.how, msg, tc.want)
				}
				if strings.HasSuffix(msg, note) != tc.noted {
					t.Errorf("%s: error %q: PeiDocker note present = %v, want %v", load.how, msg, !tc.noted, tc.noted)
				}
			}
		})
	}
}
