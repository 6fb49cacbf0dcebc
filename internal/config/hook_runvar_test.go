package config

import (
	"strings"
	"testing"
)

// TestHookRuntimeVarRefused: a {{VAR}} in any hook entry is refused at its
// place, as PeiDocker refuses it (its hooks run from generated scripts, not
// docker-compose.yml); $VAR, $${VAR} and a {{ that is no variable are not.
func TestHookRuntimeVarRefused(t *testing.T) {
	dir := project(t, "stage-1/custom/a.sh", "stage-2/custom/a.sh")
	const msg = "{{VAR}} cannot be used in a hook entry (it runs from a generated script, which Compose does not fill in); write $VAR for a variable the shell expands inside the container when the hook runs, or ${VAR} for one pei configure fills in"
	for _, tc := range []struct {
		name, stage, hook, entry string
		want                     string // "" is valid
	}{
		{"on_build", "stage_1", "on_build", "stage-1/custom/a.sh {{TAG}}", `user_config.yml:4:16: stage_1.custom.on_build[0]: "stage-1/custom/a.sh {{TAG}}": ` + msg},
		{"on_first_run", "stage_1", "on_first_run", "stage-1/custom/a.sh --x={{TAG:-dev}}", `user_config.yml:4:20: stage_1.custom.on_first_run[0]: "stage-1/custom/a.sh --x={{TAG:-dev}}": ` + msg},
		{"on_every_run", "stage_2", "on_every_run", "stage-2/custom/a.sh '{{TAG}}'", `stage_2.custom.on_every_run[0]: "stage-2/custom/a.sh '{{TAG}}'": ` + msg},
		{"on_user_login", "stage_2", "on_user_login", "stage-2/custom/a.sh {{ TAG }}", "stage_2.custom.on_user_login[0]: "},
		{"on_entry", "stage_1", "on_entry", "stage-1/custom/a.sh {{TAG}}", "stage_1.custom.on_entry[0]: "},
		{"shell variable", "stage_1", "on_build", "stage-1/custom/a.sh $TAG", ""},
		{"literal ${VAR}", "stage_1", "on_build", "stage-1/custom/a.sh $${TAG}", ""},
		{"not a variable", "stage_1", "on_build", "stage-1/custom/a.sh '{{ not one }}'", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yml := "stage_1:\n  image: {base: debian:bookworm}\n"
			if tc.stage == "stage_2" {
				yml += "stage_2:\n"
			}
			yml += "  custom:\n    " + tc.hook + ": [\"" + tc.entry + "\"]\n"
			_, err := parse(t, dir, yml, map[string]string{"TAG": "v1"})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
