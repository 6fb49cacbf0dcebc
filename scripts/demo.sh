#!/usr/bin/env bash
# pei's main job on the bundled example: create a project, configure it,
# build both images with Docker Compose, start the container, and print how
# to log in over SSH.
set -euo pipefail
cd "$(dirname "$0")/.."
export PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
scripts/setup.sh
export COMPOSE_BAKE=false
go build -o bin/pei ./cmd/pei
dir=${1:-demo-project}
[ -f "$dir/user_config.yml" ] || bin/pei create -p "$dir"
bin/pei configure -p "$dir"
cd "$dir"
docker compose build stage-1
docker compose build stage-2
docker compose up -d
port=$(docker compose port stage-2 22 | sed 's/.*://')
# sshd starts after the first-run hooks; wait (bounded) for its banner.
for _ in $(seq 60); do
	banner=$(timeout 2 bash -c "head -c 4 </dev/tcp/127.0.0.1/$port" 2>/dev/null || true)
	[ "$banner" = SSH- ] && break
	sleep 0.5
done
echo
echo "The container is up. Log in with password 123456:"
echo "  ssh -p $port me@127.0.0.1"
echo "Stop it with: (cd $dir && docker compose down)"
