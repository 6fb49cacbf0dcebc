#!/usr/bin/env bash
# Installs and starts what pei's end-to-end tests and demo need on a fresh
# Debian 12 machine, as root: Docker Engine, runc, OpenSSH client, sshpass,
# debootstrap, shellcheck, QEMU (arm64 emulation), PostgreSQL, skopeo,
# Chromium and Debian's docker-registry (pei serve's tests and benchmark),
# Compose v2 and buildx (built from the Go modules pinned in tools/go.mod),
# buildkitd and buildctl (tools/buildkit/go.mod), crane and the OCI
# distribution-spec conformance suite (tools/registry/go.mod), a running
# dockerd and a locally bootstrapped debian:bookworm base image.
# Idempotent; what it builds is cached under $PEI_CACHE (default
# /var/cache/pei).
set -euo pipefail
cd "$(dirname "$0")/.."
PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
mkdir -p "$PEI_CACHE/bin"
log() { printf '\n== setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	echo "setup.sh installs packages and starts dockerd: run it as root" >&2
	exit 1
fi

need=()
for pkg in docker.io runc openssh-client sshpass debootstrap openssl shellcheck rootlesskit uidmap mmdebstrap qemu-user-static postgresql skopeo chromium chromium-driver docker-registry; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# QEMU emulation of arm64 for multi-platform builds: registered with the
# kernel directly, as no systemd-binfmt runs here. Failing that, the build
# says what is missing.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
	mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || log "cannot mount $binfmt: no QEMU emulation"
fi
if [ -e "$binfmt/register" ] && [ ! -e "$binfmt/qemu-aarch64" ]; then
	log "registering QEMU for arm64 binaries"
	cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register" || log "cannot register QEMU: no arm64 emulation"
fi

# build_tool NAME MODULE_DIR PACKAGE VERSION_VAR: builds a tool from a Go
# module pinned in MODULE_DIR/go.mod, cached under $PEI_CACHE/bin by version,
# and prints its path.
build_tool() {
	local name=$1 dir=$2 pkg=$3 version_var=$4 module version bin
	module=${pkg%%/cmd*}
	version=$(awk -v m="$module" '$1 == m {print $2}' "$dir/go.mod")
	bin=$PEI_CACHE/bin/$name-$version
	if [ ! -x "$bin" ]; then
		log "building $name $version from its Go module (about 2 minutes)"
		(cd "$dir" && go build -trimpath -ldflags "-X $version_var=$version" -o "$bin.tmp" "$pkg")
		mv "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

# Compose v2 and buildx (the docker CLI needs it for BuildKit builds, as in
# build-merged.sh), at the versions pinned in tools/go.mod; BuildKit's daemon
# and CLI for pei build from their own module.
compose_bin=$(build_tool docker-compose tools github.com/docker/compose/v2/cmd github.com/docker/compose/v2/internal.Version)
buildx_bin=$(build_tool docker-buildx tools github.com/docker/buildx/cmd/buildx github.com/docker/buildx/version.Version)
for tool in buildkitd buildctl; do
	install -m 755 "$(build_tool "$tool" tools/buildkit "github.com/moby/buildkit/cmd/$tool" github.com/moby/buildkit/version.Version)" "/usr/local/bin/$tool"
done
# crane and the distribution-spec conformance suite, for pei serve's tests.
install -m 755 "$(build_tool crane tools/registry github.com/google/go-containerregistry/cmd/crane main.Version)" /usr/local/bin/crane
install -m 755 "$(build_tool oci-conformance tools/registry github.com/opencontainers/distribution-spec/conformance main.Version)" /usr/local/bin/oci-conformance
mkdir -p /usr/local/lib/docker/cli-plugins
install -m 755 "$compose_bin" /usr/local/lib/docker/cli-plugins/docker-compose
install -m 755 "$buildx_bin" /usr/local/lib/docker/cli-plugins/docker-buildx

if ! docker info >/dev/null 2>&1; then
	log "starting dockerd"
	nohup dockerd >/var/log/pei-dockerd.log 2>&1 &
	for _ in $(seq 60); do
		docker info >/dev/null 2>&1 && break
		sleep 1
	done
	docker info >/dev/null 2>&1 || {
		tail -20 /var/log/pei-dockerd.log >&2
		exit 1
	}
fi

# A Debian base image, bootstrapped locally (there is no registry to pull
# from) and cached as a tarball.
base=${PEI_BASE_IMAGE:-debian:bookworm}
if ! docker image inspect "$base" >/dev/null 2>&1; then
	tarball=$PEI_CACHE/debian-bookworm-minbase.tar
	if [ ! -s "$tarball" ]; then
		log "bootstrapping Debian bookworm (about 30 seconds)"
		root=$(mktemp -d)
		debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
		tar -C "$root" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$root"
	fi
	log "importing $base"
	docker import "$tarball" "$base" >/dev/null
fi
log "ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short 2>/dev/null || echo compose), base $base"
