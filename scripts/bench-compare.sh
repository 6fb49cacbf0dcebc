#!/usr/bin/env bash
# Runs one of pei's benchmark harnesses (bench/NAME) built from an earlier
# revision and from the working tree, alternately, on one machine in one
# run: the way a change that must not cost speed (a refactor) is measured
# against the code before it (docs/benchmarks.md records the figures with
# this command). Each harness prints its own table per run; the rows to
# compare are labelled "before" and "after".
#
# Usage: scripts/bench-compare.sh [--rounds N] BEFORE_REV NAME [HARNESS FLAGS...]
#   NAME is build, inspect or serve; --rounds (default 2) is how many
#   before/after pairs run, in the order before, after, after, before, ...
#   so that neither side always runs first.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2
if [ "${1:-}" = --rounds ]; then
	rounds=$2
	shift 2
fi
if [ $# -lt 2 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
before=$1 name=$2
shift 2
if [ ! -d "bench/$name" ]; then
	echo "bench-compare.sh: no harness bench/$name" >&2
	exit 2
fi
rev=$(git rev-parse --verify "$before^{commit}")
work=$(mktemp -d "${TMPDIR:-/tmp}/pei-bench-compare.XXXXXX")
cleanup() {
	git worktree remove --force "$work/before" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
git worktree add --detach -q "$work/before" "$rev"
(cd "$work/before" && go build -o "$work/bench-before" "./bench/$name")
go build -o "$work/bench-after" "./bench/$name"
for ((i = 1; i <= rounds; i++)); do
	if ((i % 2)); then order=(before after); else order=(after before); fi
	for side in "${order[@]}"; do
		printf '\n### %s (%s), round %d\n\n' "$side" "$([ "$side" = before ] && echo "${rev:0:12}" || echo "working tree")" "$i"
		"$work/bench-$side" "$@"
	done
done
