#!/usr/bin/env bash
# Runs .ci/run (setup.sh, then every test) on a fresh Debian 12 machine made
# here: a container of a freshly bootstrapped Debian 12 root holding only Go
# and a clean clone of a commit, with its own Docker engine, network and
# caches. It proves that a change works where nothing was installed by hand.
#
# Usage: scripts/fresh-check.sh [options] [-- COMMAND...]
#   --rev REV       check commit REV (default HEAD; uncommitted changes are never checked)
#   --keep-cache    reuse the volume pei-fresh-check-cache as /var/cache/pei (tools
#                   built by an earlier run): quicker, but not the proof; the default
#                   is an empty cache
#   --keep          keep the container and its volumes afterwards, to look inside
#   --refresh       bootstrap the Debian root again (else a cached one less than a
#                   week old is reused)
#   --log FILE      the full log (default $PEI_CACHE/fresh-check/logs/DATE-COMMIT.log)
#   -- COMMAND...   run COMMAND in the fresh machine instead of .ci/run (to debug
#                   this script; the proof is .ci/run)
# Needs root, a running Docker engine, debootstrap and Go on the host. Exits
# with the inner run's status.
#
# What the fresh machine shares with the host: the kernel, so its loaded
# modules and binfmt_misc registrations (QEMU for arm64) are the host's; and
# it reaches Debian's mirror and the Go module proxy through the host's
# network, trusting the certificates the host trusts beyond Debian's (a
# site's TLS proxy). Nothing else: its packages, tools, caches, images and Go
# modules are its own.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^#/!d;s/^# \{0,1\}//;p}' "$0" >&2; }

rev=HEAD keep_cache=false keep=false refresh=false log='' cmd=()
while [ $# -gt 0 ]; do
	case $1 in
	--rev) rev=${2:?--rev needs a commit}; shift 2 ;;
	--keep-cache) keep_cache=true; shift ;;
	--keep) keep=true; shift ;;
	--refresh) refresh=true; shift ;;
	--log) log=${2:?--log needs a file}; shift 2 ;;
	--) shift; cmd=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) echo "fresh-check: unknown argument $1" >&2; usage; exit 2 ;;
	esac
done

PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
cache_dir=$PEI_CACHE/fresh-check
mirror=${PEI_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "fresh-check: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run it as root (it bootstraps Debian and runs a container that runs a Docker engine)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run scripts/setup.sh)"
go=$(command -v go || echo /usr/local/go/bin/go)
goroot=$("$go" env GOROOT 2>/dev/null) || die "Go is not on PATH (nor in /usr/local/go)"

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}") || die "no commit $rev in $repo"
if [ "$rev" = HEAD ] && [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
	echo "fresh-check: note: uncommitted changes in $repo are not checked, only commit ${sha:0:12}" >&2
fi

mkdir -p "$cache_dir/logs"
log=${log:-$cache_dir/logs/$(date -u +%Y%m%dT%H%M%SZ)-${sha:0:12}.log}
: >"$log"
say() { printf 'fresh-check: %s\n' "$*" | tee -a "$log" >&2; }

# Everything this run makes is named after it, and removed on every exit
# (also ^C) unless --keep.
id=pei-fresh-check-$(date +%s)-$$
image=$id:bookworm
container=$id
volumes=("$id-docker" "$id-tmp")
cache_volume=$id-cache
$keep_cache && cache_volume=pei-fresh-check-cache
$keep_cache || volumes+=("$cache_volume")
work=$(mktemp -d)
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if $keep; then
		say "kept container $container, volumes ${volumes[*]} and image $image (docker rm -f $container; docker volume rm ${volumes[*]}; docker rmi $image)"
	else
		docker rm -f "$container" >/dev/null 2>&1 || true
		docker volume rm "${volumes[@]}" >/dev/null 2>&1 || true
		docker rmi "$image" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The fresh OS: Debian 12 minbase, plus ca-certificates, which every
# Debian 12 install and cloud image has and which Go needs to reach the
# module proxy over HTTPS. Nothing of the project's: setup.sh installs that.
rootfs=$cache_dir/debian-bookworm-minbase-ca.tar
if $refresh || [ ! -s "$rootfs" ] || [ -n "$(find "$rootfs" -mtime +6)" ]; then
	say "bootstrapping Debian 12 (minbase + ca-certificates) into $rootfs"
	debootstrap --variant=minbase --include=ca-certificates bookworm "$work/root" "$mirror" >>"$log" 2>&1 ||
		die "debootstrap failed; see $log"
	tar -C "$work/root" --numeric-owner -cf "$rootfs.tmp" .
	mv "$rootfs.tmp" "$rootfs"
	rm -rf "$work/root"
fi
say "importing $rootfs as $image"
docker import "$rootfs" "$image" >/dev/null

# 2. Go (as "Go on PATH" on a fresh machine) and a clean clone of the commit.
say "cloning commit ${sha:0:12} of $repo"
git clone -q --no-checkout "$repo" "$work/pei"
git -C "$work/pei" cat-file -e "$sha^{commit}" 2>/dev/null || git -C "$work/pei" fetch -q origin "$sha"
git -C "$work/pei" checkout -q --detach "$sha"

# The certificates this machine trusts beyond Debian's (a site's
# TLS-intercepting proxy, as here) are the network's, not the project's: a
# machine on this network has them too, or nothing reaches the Go module
# proxy. They go to /usr/local/share/ca-certificates, Debian's place for them.
mkdir "$work/site-ca"
tar -xOf "$rootfs" ./etc/ssl/certs/ca-certificates.crt >"$work/debian.crt"
awk -v dir="$work/site-ca" '
	FNR == 1 { file++ }
	/-----BEGIN CERTIFICATE-----/ { cert = "" }
	{ cert = cert $0 "\n" }
	/-----END CERTIFICATE-----/ {
		if (file == 1) debian[cert] = 1
		else if (!(cert in debian)) { n++; printf "%s", cert > (dir "/site-" n ".crt") }
	}' "$work/debian.crt" /etc/ssl/certs/ca-certificates.crt
site_cas=$(find "$work/site-ca" -name '*.crt' | wc -l)

for v in "${volumes[@]}"; do docker volume create "$v" >/dev/null; done
$keep_cache && docker volume create "$cache_volume" >/dev/null

# 3. The container. --privileged fails on these machines ("unable to apply
# caps"), so it gets what a nested engine and the tests need, by name:
#  SYS_ADMIN    mounts: dockerd's overlay2, buildkitd's snapshots, binfmt_misc,
#               mmdebstrap's /proc, /sys and /dev in its chroot; namespaces
#               for runc, rootlesskit and `unshare -n`
#  NET_ADMIN    dockerd's bridge and iptables rules, network namespaces' links
#  MKNOD        device nodes in chroots and in the engine's containers
#  seccomp=unconfined   Docker's profile refuses mount, unshare(CLONE_NEWUSER)
#               and keyctl, which all of the above use
#  apparmor=unconfined  docker-default refuses mount (on hosts with AppArmor)
#  systempaths=unconfined  Docker masks parts of /proc; a user namespace
#               (rootless buildkitd, rootless mmdebstrap) may only mount a new
#               /proc if none of it is hidden
#  /sys/fs/cgroup rw    dockerd, runc and buildkitd make cgroups
#  --shm-size   a machine's /dev/shm is half its memory, Docker's 64 MB crashes
#               Chromium's renderer
#  --init       reaps the daemons' orphans
# Overlayfs cannot put its upper layers on the container's own overlayfs
# root, so where the inner engine and the tests keep layers are volumes:
# /var/lib/docker (dockerd), /tmp (t.TempDir(): buildkitd roots, pei's state
# in tests, mmdebstrap) and /var/cache/pei (setup.sh's tools and base image).
# CI=true makes a missing tool fail its test instead of skipping it.
prepare='chmod 1777 /tmp && { update-ca-certificates >/dev/null 2>&1 || update-ca-certificates; } && cd /root/pei'
run_cmd=(bash -c "$prepare && exec .ci/run")
[ ${#cmd[@]} -gt 0 ] && run_cmd=(bash -c "$prepare"' && exec "$@"' fresh-check "${cmd[@]}")
docker create --name "$container" --hostname fresh-debian12 --init \
	--cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add MKNOD \
	--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
	-v /sys/fs/cgroup:/sys/fs/cgroup:rw --shm-size 2g \
	-v "$id-docker:/var/lib/docker" -v "$id-tmp:/tmp" -v "$cache_volume:/var/cache/pei" \
	-e CI=true -e HOME=/root -e PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	-w /root "$image" "${run_cmd[@]}" >/dev/null
docker cp -q "$goroot/." "$container:/usr/local/go"
docker cp -q "$work/pei/." "$container:/root/pei"
docker cp -q "$work/site-ca/." "$container:/usr/local/share/ca-certificates"
say "Go $("$go" env GOVERSION) from $goroot; $site_cas site CA certificate(s); cache $($keep_cache && echo "reused ($cache_volume)" || echo fresh); log $log"

# 4. Run, then sum up.
say "running ${cmd[*]:-.ci/run} in container $container (this takes a while)"
start=$(date +%s)
# Detached and followed, so that ^C stops following and the trap removes
# the container (an attached client would forward ^C to it instead).
docker start "$container" >/dev/null
docker logs -f "$container" 2>&1 | tee -a "$log" || true
status=$(docker wait "$container")
secs=$(($(date +%s) - start))
# The inner engine's log, for failures in the nesting.
docker cp -q "$container:/var/log/pei-dockerd.log" "${log%.log}.dockerd.log" 2>/dev/null || true

{
	echo
	echo "==== fresh-check summary"
	echo "commit:    $sha"
	echo "result:    $([ "$status" = 0 ] && echo PASS || echo FAIL) (exit status $status)"
	printf 'wall time: %dm%02ds\n' $((secs / 60)) $((secs % 60))
	echo "last step: $(grep -E '^== ' "$log" | tail -1 || true)"
	if grep -qE '^(--- FAIL|FAIL)' "$log"; then
		echo "failures:"
		grep -E '^(\s*--- FAIL|FAIL)' "$log" | sed 's/^/  /'
	fi
	echo "last lines:"
	tail -n 25 "$log" | sed 's/^/  /'
	echo "full log:  $log"
} >"$work/summary"
cat "$work/summary" >>"$log"
cat "$work/summary"
exit "$status"
