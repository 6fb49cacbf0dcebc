#!/usr/bin/env bash
# Installs and starts what pei's end-to-end tests and demo need on a fresh
# Debian 12 machine, as root: Docker Engine, runc, OpenSSH client, sshpass,
# debootstrap, shellcheck, Compose v2 and buildx (built from the Go modules
# pinned in tools/go.mod), buildkitd and buildctl (tools/buildkit/go.mod), a
# running dockerd and a locally bootstrapped debian:bookworm base image.
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
for pkg in docker.io runc openssh-client sshpass debootstrap openssl shellcheck rootlesskit uidmap mmdebstrap; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Compose v2, built from the pinned Go module and cached by its version.
compose_version=$(awk '$1 == "github.com/docker/compose/v2" {print $2}' tools/go.mod)
compose_bin=$PEI_CACHE/bin/docker-compose-$compose_version
if [ ! -x "$compose_bin" ]; then
	log "building docker compose $compose_version from its Go module (about 2 minutes)"
	(cd tools && go build -trimpath -ldflags "-X github.com/docker/compose/v2/internal.Version=$compose_version" \
		-o "$compose_bin.tmp" github.com/docker/compose/v2/cmd)
	mv "$compose_bin.tmp" "$compose_bin"
fi
# buildx, which the docker CLI needs for BuildKit builds (build-merged.sh),
# at the version Compose itself pins.
buildx_version=$(awk '$1 == "github.com/docker/buildx" {print $2}' tools/go.mod)
buildx_bin=$PEI_CACHE/bin/docker-buildx-$buildx_version
if [ ! -x "$buildx_bin" ]; then
	log "building docker buildx $buildx_version from its Go module (about 2 minutes)"
	(cd tools && go build -trimpath -ldflags "-X github.com/docker/buildx/version.Version=$buildx_version" \
		-o "$buildx_bin.tmp" github.com/docker/buildx/cmd/buildx)
	mv "$buildx_bin.tmp" "$buildx_bin"
fi
# BuildKit's daemon and CLI for pei build, from their own pinned module.
buildkit_version=$(awk '$1 == "github.com/moby/buildkit" {print $2}' tools/buildkit/go.mod)
for tool in buildkitd buildctl; do
	bin=$PEI_CACHE/bin/$tool-$buildkit_version
	if [ ! -x "$bin" ]; then
		log "building $tool $buildkit_version from its Go module (about 2 minutes)"
		(cd tools/buildkit && go build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$buildkit_version" \
			-o "$bin.tmp" "github.com/moby/buildkit/cmd/$tool")
		mv "$bin.tmp" "$bin"
	fi
	install -m 755 "$bin" "/usr/local/bin/$tool"
done
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
