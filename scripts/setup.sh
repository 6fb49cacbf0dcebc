#!/usr/bin/env bash
# Installs and starts what pei's end-to-end tests and demo need on a fresh
# Debian 12 machine, as root: Docker Engine, runc, OpenSSH client, sshpass,
# debootstrap, mmdebstrap, arch-test, shellcheck, rootlesskit, uidmap, QEMU
# (arm64 emulation), CNI plugins, slirp4netns and iptables (builds off the
# host network), PostgreSQL, skopeo, Chromium and Debian's
# docker-registry (pei serve's tests and benchmark), Compose v2 and buildx
# (built from the Go modules pinned in tools/go.mod), buildkitd and buildctl
# (tools/buildkit/go.mod), crane and the OCI distribution-spec conformance
# suite (tools/registry/go.mod), a running dockerd and a locally
# bootstrapped debian:bookworm base image. It ends by checking that each
# tool the tests use runs. Idempotent; what it builds is cached under
# $PEI_CACHE (default /var/cache/pei).
set -euo pipefail
cd "$(dirname "$0")/.."
PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
mkdir -p "$PEI_CACHE/bin"
log() { printf '\n== setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	echo "setup.sh installs packages and starts dockerd: run it as root" >&2
	exit 1
fi

# It installs without Recommends, so what the tests rely on of those is named
# too: arch-test (mmdebstrap and debootstrap for foreign architectures), gpg,
# libdpkg-perl and debian-archive-keyring (mmdebstrap's keyring choice),
# gpgv (debootstrap's Release check), git (SOURCE_DATE_EPOCH from a
# project's last commit), ca-certificates (Go modules over HTTPS).
need=()
for pkg in docker.io runc openssh-client sshpass debootstrap openssl shellcheck rootlesskit uidmap mmdebstrap qemu-user-static postgresql skopeo chromium chromium-driver docker-registry \
	arch-test gpg gpgv libdpkg-perl debian-archive-keyring git ca-certificates \
	containernetworking-plugins slirp4netns iptables iproute2 util-linux; do
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

# slirp4netns (rootless builds off the host network) opens /dev/net/tun as
# the user; Debian's udev makes it 0666, a machine without udev (a
# container, a chroot) may not have it at all: the kernel's tun module
# makes the device, and the node is made by hand where no devtmpfs is
# mounted (character device 10:200, as the kernel documents it).
if [ ! -c /dev/net/tun ]; then
	modprobe tun 2>/dev/null || true
fi
if [ ! -c /dev/net/tun ]; then
	mkdir -p /dev/net
	mknod /dev/net/tun c 10 200 || log "cannot make /dev/net/tun: no rootless build isolation"
fi
if [ -c /dev/net/tun ]; then
	chmod 0666 /dev/net/tun
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

# Every tool the tests use must run: a missing one stops here, by name,
# rather than failing (or, outside CI, skipping) tests later.
broken=()
# runs NAME HOW-TO-GET COMMAND...: COMMAND must exit 0.
runs() {
	local name=$1 fix=$2
	shift 2
	"$@" >/dev/null 2>&1 </dev/null || broken+=("$name: $fix")
}
apt_fix() { echo "apt-get install $1"; }
built_fix() { echo "built by this script from tools/${2:-}go.mod, cached as $PEI_CACHE/bin/$1-VERSION (remove it to rebuild)"; }
runs mmdebstrap "$(apt_fix mmdebstrap)" mmdebstrap --version
runs debootstrap "$(apt_fix debootstrap)" debootstrap --version
runs qemu-aarch64-static "$(apt_fix qemu-user-static)" qemu-aarch64-static --version
runs "QEMU arm64 emulation (binfmt_misc)" "mount binfmt_misc on $binfmt and write /usr/lib/binfmt.d/qemu-aarch64.conf to $binfmt/register (this script does; the kernel needs binfmt_misc)" test -e "$binfmt/qemu-aarch64"
runs arch-test "$(apt_fix arch-test); 'arch-test arm64' must pass, which needs the QEMU emulation above" arch-test arm64
runs buildkitd "$(built_fix buildkitd buildkit/)" buildkitd --version
runs buildctl "$(built_fix buildctl buildkit/)" buildctl --version
runs runc "$(apt_fix runc)" runc --version
runs rootlesskit "$(apt_fix rootlesskit)" rootlesskit --version
runs newuidmap "$(apt_fix uidmap)" test -u "$(command -v newuidmap)"
runs newgidmap "$(apt_fix uidmap)" test -u "$(command -v newgidmap)"
runs runuser "$(apt_fix util-linux)" runuser --version
runs useradd "$(apt_fix passwd)" command -v useradd
runs crane "$(built_fix crane registry/)" crane version
oci_conformance() { # it has no --version: run it against a closed port
	local dir out
	dir=$(mktemp -d)
	out=$(cd "$dir" && OCI_REGISTRY=127.0.0.1:1 OCI_RESULTS_DIR=$dir timeout 60 oci-conformance 2>&1)
	rm -rf "$dir"
	[[ $out == *"Conformance test"* ]]
}
runs oci-conformance "$(built_fix oci-conformance registry/)" oci_conformance
runs docker "$(apt_fix docker.io); dockerd must be running (this script starts it)" docker version
runs "docker compose" "$(built_fix docker-compose)" docker compose version
runs "docker buildx" "$(built_fix docker-buildx)" docker buildx version
runs "image $base" "this script bootstraps it with debootstrap and imports it" docker image inspect "$base"
runs chromium "$(apt_fix chromium)" chromium --headless --no-sandbox --version
runs chromedriver "$(apt_fix chromium-driver)" chromedriver --version
pg_bin=$(find /usr/lib/postgresql -path '*/bin/initdb' 2>/dev/null | sort -V | tail -1)
pg_bin=${pg_bin%/initdb}
runs initdb "$(apt_fix postgresql)" "${pg_bin:-/usr/lib/postgresql/none/bin}/initdb" --version
runs pg_ctl "$(apt_fix postgresql)" "${pg_bin:-/usr/lib/postgresql/none/bin}/pg_ctl" --version
runs "postgres user" "$(apt_fix postgresql)" id postgres
runs openssl "$(apt_fix openssl)" openssl version
runs ssh "$(apt_fix openssh-client)" ssh -V
runs sshpass "$(apt_fix sshpass)" sshpass -V
ssh_keygen() {
	local dir
	dir=$(mktemp -d)
	ssh-keygen -q -t ed25519 -N '' -f "$dir/key"
	local rc=$?
	rm -rf "$dir"
	return $rc
}
runs ssh-keygen "$(apt_fix openssh-client)" ssh_keygen
runs shellcheck "$(apt_fix shellcheck)" shellcheck --version
runs skopeo "$(apt_fix skopeo)" skopeo --version
runs docker-registry "$(apt_fix docker-registry)" docker-registry --version
runs git "$(apt_fix git)" git --version
# Builds from pei serve run off the host network: a CNI bridge for a root
# buildkitd, slirp4netns for a rootless one, iptables rules for both.
for plugin in bridge host-local loopback; do
	runs "CNI $plugin plugin" "$(apt_fix containernetworking-plugins)" test -x /usr/lib/cni/$plugin
done
runs slirp4netns "$(apt_fix slirp4netns)" slirp4netns --version
runs "/dev/net/tun open to every user" "the kernel's tun module (modprobe tun) and chmod 0666 /dev/net/tun" test -c /dev/net/tun -a -r /dev/net/tun -a -w /dev/net/tun
runs iptables-restore "$(apt_fix iptables)" iptables-restore --version
runs ip6tables-restore "$(apt_fix iptables)" ip6tables-restore --version
runs ip "$(apt_fix iproute2)" ip -V
runs unshare "$(apt_fix util-linux)" unshare --version
runs gpg "$(apt_fix gpg)" gpg --version
runs go "install Go 1.26 and put it on PATH (https://go.dev/dl/)" go version
if [ "${#broken[@]}" -gt 0 ]; then
	printf 'setup.sh: what the tests need does not run (fix it, then run scripts/setup.sh again):\n' >&2
	printf '  %s\n' "${broken[@]}" >&2
	exit 1
fi
log "ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short 2>/dev/null || echo compose), base $base"
