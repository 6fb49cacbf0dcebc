package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/render"
	"github.com/pei-dev/pei/internal/testenv"
)

// The mirror names map to the right sources for the base image's
// distribution, read from its /etc/os-release (faked here for Ubuntu, since
// no Ubuntu image can be had without a registry).
func TestAptMirrors(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)
	osRelease := map[string]string{
		"ubuntu": "ID=ubuntu\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\n",
		"debian": "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
	}
	for _, tc := range []struct{ distro, mirror, want string }{
		{"ubuntu", "tuna", "deb http://mirrors.tuna.tsinghua.edu.cn/ubuntu noble-security main restricted universe multiverse"},
		{"ubuntu", "cn", "deb http://cn.archive.ubuntu.com/ubuntu noble main restricted universe multiverse"},
		{"debian", "aliyun", "deb http://mirrors.aliyun.com/debian bookworm main contrib non-free non-free-firmware"},
		{"debian", "ustc", "deb http://mirrors.ustc.edu.cn/debian-security bookworm-security main contrib non-free non-free-firmware"},
		{"debian", "163", "deb http://mirrors.163.com/debian bookworm-updates main contrib non-free non-free-firmware"},
	} {
		t.Run(tc.distro+"-"+tc.mirror, func(t *testing.T) {
			cfg, err := config.Parse([]byte("stage_1:\n  image: {base: x}\n  apt: {repo_source: "+tc.mirror+"}\n"), "user_config.yml", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.New(config.WithDefaults(cfg), "apt")
			if err != nil {
				t.Fatal(err)
			}
			scripts, err := render.StageScripts(p.Stages[0])
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for _, f := range scripts {
				os.WriteFile(filepath.Join(dir, filepath.Base(f.Path)), f.Data, 0o644)
			}
			os.WriteFile(filepath.Join(dir, "os-release"), []byte(osRelease[tc.distro]), 0o644)
			out := run(t, dir, "docker", "run", "--rm", "-v", dir+":/pei-init/stage-1/internals:ro", "-v", dir+"/os-release:/etc/os-release:ro",
				"--entrypoint", "bash", baseImage, "-c", "bash /pei-init/stage-1/internals/system.sh >/dev/null && cat /etc/apt/sources.list && ls /var/lib/pei/apt-backup")
			if !strings.Contains(out, tc.want+"\n") {
				t.Errorf("sources.list lacks %q:\n%s", tc.want, out)
			}
			if !strings.Contains(out, "sources.list") {
				t.Errorf("the base image's sources were not backed up:\n%s", out)
			}
		})
	}
}
