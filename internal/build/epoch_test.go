package build

import (
	"os"
	"os/exec"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

func TestSourceDateEpochOrder(t *testing.T) {
	dir := t.TempDir()
	env := func(n int64) *int64 { return &n }
	if got := sourceDateEpoch(t.Context(), 5, env(7), dir); got != 5 {
		t.Errorf("config first: %d", got)
	}
	if got := sourceDateEpoch(t.Context(), -1, env(7), dir); got != 7 {
		t.Errorf("then the environment: %d", got)
	}
	if got := sourceDateEpoch(t.Context(), -1, nil, dir); got != -1 {
		t.Errorf("no git, no setting: %d", got)
	}
	testenv.Tools(t, "git")
	run := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=@1600000000 +0000", "GIT_AUTHOR_DATE=@1600000000 +0000",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	run("init", "-q")
	run("commit", "-q", "--allow-empty", "-m", "x")
	if got := sourceDateEpoch(t.Context(), -1, nil, dir); got != 1600000000 {
		t.Errorf("the last commit: %d", got)
	}
}
