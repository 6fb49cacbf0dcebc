#!/usr/bin/env bash
# Mutation testing of the packages where a wrong line is a security or data
# bug: internal/service (auth, revocation, builds, workers, webhook
# addresses), internal/store (tokens, queue, leases), internal/recipe
# (archive checks and unpacking), internal/config (validation),
# internal/sysmerge (what a composed image's package databases and users
# become) and internal/buildkit's compose (which files it writes). Two
# parts, see docs/testing.md:
#
#  1. gremlins (pinned in tools/mutation/go.mod, built and cached under
#     $PEI_CACHE/bin like scripts/setup.sh's tools) mutates operators in the
#     files that hold the checks and reports killed, lived, not covered and
#     timed out mutants per package. Its survivors are for a human to judge.
#  2. Every hand-written mutant in scripts/mutants/*.patch (a unified diff
#     whose first line names its package, the test meant to kill it and the
#     bug it models) is applied to a fresh copy of the tree, never to the
#     working tree, and that package's tests must fail. A mutant that
#     survives, no longer applies or does not compile fails this script.
#
# It takes about an hour on 2 cores (docs/testing.md), so it is not part of
# scripts/test.sh; rerun it whenever a change touches these packages. It
# needs what scripts/setup.sh installs (Go, PostgreSQL).
#
# Usage: scripts/mutation.sh [--gremlins-only | --hand-only] [internal/PKG | MUTANT]...
#   internal/PKG   limit both parts to these packages
#   MUTANT         run only these hand-written mutants (implies --hand-only)
# Environment: PEI_CACHE (default /var/cache/pei), PEI_MUTATION_WORKERS
# (gremlins' parallel runs, default 2), PEI_MUTATION_TIMEOUT_COEFFICIENT
# (a gremlins run may take this many times the package's plain test run,
# default 8), PEI_MUTATION_OUT (where reports go, default a new temporary
# directory).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
workers=${PEI_MUTATION_WORKERS:-2}
coefficient=${PEI_MUTATION_TIMEOUT_COEFFICIENT:-8}
out=${PEI_MUTATION_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pei-mutation.XXXXXX")}
mkdir -p "$out" "$PEI_CACHE/bin"
# A test that cannot run (no PostgreSQL) must fail, not skip: a skipped
# test kills no mutant, and the baseline run below would not notice.
export CI=true
# The recipe property tests draw random archives; one fixed seed makes
# every run of every mutant see the same ones (a kill is then the mutant's
# doing, not the draw's).
export PEI_RECIPE_SEED=${PEI_RECIPE_SEED:-1}
log() { printf '\n== mutation: %s\n' "$*" >&2; }

packages=(internal/service internal/store internal/recipe internal/config internal/sysmerge internal/buildkit)
# The files gremlins mutates: the ones holding the checks. Decoding, error
# formatting, the registry plumbing and the UI are left out to keep a run
# bounded (docs/testing.md says why).
declare -A keep=(
	[internal/service]="auth.go revocation.go builds.go workers.go hookaddr.go catalog.go"
	[internal/store]="builds.go store.go referrers.go catalog.go"
	[internal/recipe]="recipe.go walk.go unpack.go unpack_linux.go"
	[internal/config]="validate.go load.go fsload.go layout.go"
	[internal/sysmerge]="merge.go keyed.go status.go passwd.go alternatives.go triggers.go depends.go version.go kind.go"
	[internal/buildkit]="compose.go"
)
# Test flags for gremlins' runs: -short leaves out the PostgreSQL halves of
# the store and service tests (each starts a server: ~5 s a test). The SQL
# is the same on both; the hand-written mutants run the full suites.
declare -A gremlins_flags=(
	[internal/service]="-short"
	[internal/store]="-short"
	[internal/recipe]=""
	[internal/config]=""
	[internal/sysmerge]=""
	[internal/buildkit]=""
)

mode=all
selected=()
names=()
for arg in "$@"; do
	case $arg in
	--gremlins-only) mode=gremlins ;;
	--hand-only) mode=hand ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	internal/*)
		pkg=${arg%/}
		if [ -z "${keep[$pkg]+x}" ]; then
			echo "mutation.sh: $pkg is not one of: ${packages[*]}" >&2
			exit 2
		fi
		selected+=("$pkg")
		;;
	*)
		name=$(basename "$arg" .patch)
		if [ ! -f "scripts/mutants/$name.patch" ]; then
			echo "mutation.sh: no package or mutant $arg (mutants are scripts/mutants/NAME.patch)" >&2
			exit 2
		fi
		names+=("$name")
		mode=hand
		;;
	esac
done
if [ "${#selected[@]}" -eq 0 ]; then
	selected=("${packages[@]}")
fi
failed=0

# build_gremlins prints the path of gremlins at the version pinned in
# tools/mutation/go.mod, building it once into $PEI_CACHE/bin (as
# scripts/setup.sh's build_tool does for the other tools).
build_gremlins() {
	local version bin
	version=$(awk '$1 == "github.com/go-gremlins/gremlins" {print $2}' tools/mutation/go.mod)
	if [ -z "$version" ]; then
		echo "mutation.sh: tools/mutation/go.mod does not pin github.com/go-gremlins/gremlins" >&2
		exit 1
	fi
	bin=$PEI_CACHE/bin/gremlins-$version
	if [ ! -x "$bin" ]; then
		log "building gremlins $version from its Go module (about a minute)"
		(cd tools/mutation && go build -trimpath -ldflags "-X main.version=$version" -o "$bin.tmp" github.com/go-gremlins/gremlins/cmd/gremlins)
		mv "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

# run_gremlins PKG: gremlins' operator mutations on PKG's kept files.
run_gremlins() {
	local pkg=$1 report f rel start
	local excludes=()
	report=$out/gremlins-${pkg//\//-}
	while IFS= read -r f; do
		rel=${f#"$pkg"/}
		if [[ " ${keep[$pkg]} " != *" $rel "* ]]; then
			excludes+=(-E "^${rel//./\\.}\$")
		fi
	done < <(find "$pkg" -name '*.go' ! -name '*_test.go' | sort)
	log "gremlins on $pkg (${keep[$pkg]}; go test ${gremlins_flags[$pkg]:-without extra flags})"
	start=$SECONDS
	# -count=1: a cached coverage run would take no time, and gremlins
	# times each mutant's run out at a multiple of it. CI is unset for
	# gremlins: with CI set, testenv fails a -short run (-short would skip
	# the PostgreSQL halves), and leaving those out is this part's choice.
	if ! (cd "$pkg" && env -u CI GOFLAGS="${GOFLAGS:+$GOFLAGS }-count=1 ${gremlins_flags[$pkg]}" "$gremlins" unleash \
		--invert-logical --workers "$workers" --timeout-coefficient "$coefficient" \
		--output "$report.json" "${excludes[@]}") >"$report.log" 2>&1; then
		tail -20 "$report.log" >&2
		echo "mutation.sh: gremlins failed on $pkg (log: $report.log)" >&2
		failed=1
		return
	fi
	grep -E '^ *(LIVED|NOT COVERED|TIMED OUT) ' "$report.log" || true
	grep -E '^(Killed|Timed out|Test efficacy|Mutator coverage):' "$report.log" | sed "s|^|$pkg: |"
	echo "$pkg: gremlins took $((SECONDS - start)) s"
}

# The hand-written mutants run in $tree, a fresh copy of the working tree
# made for each one (the same path each time, so Go's build cache still
# serves the packages a mutant does not touch).
work=$(mktemp -d "${TMPDIR:-/tmp}/pei-mutants.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/tree
fresh_tree() {
	rm -rf "$tree"
	mkdir -p "$tree"
	tar -C "$root" --exclude=./.git --exclude=./.cache --exclude=./bin -cf - . | tar -C "$tree" -xf -
}

# pkg_test PKG LOG: PKG's whole test suite in $tree (all of it, not
# -failfast: the log then shows every test a mutant fails).
pkg_test() {
	(cd "$tree" && go test -count=1 -vet=off -timeout 10m "./$1") >"$2" 2>&1
}

# mutant_pkg PATCH prints the package a mutant's first line names:
# "# ./internal/PKG (TestThatKillsIt): the bug it models".
mutant_pkg() {
	sed -n '1s|^# \./\(internal/[a-z]*\) (.*): .*|\1|p' "$1"
}

declare -A total=() killed=()
run_hand() {
	local pkg patch name start status tests expected
	local todo=()
	local -A used=()
	for patch in scripts/mutants/*.patch; do
		name=$(basename "$patch" .patch)
		pkg=$(mutant_pkg "$patch")
		if [ -z "$pkg" ]; then
			echo "mutation.sh: $patch: the first line must read '# ./internal/PKG (TestName): what bug it models'" >&2
			failed=1
			continue
		fi
		if [[ " ${selected[*]} " != *" $pkg "* ]]; then
			continue
		fi
		if [ "${#names[@]}" -gt 0 ] && [[ " ${names[*]} " != *" $name "* ]]; then
			continue
		fi
		todo+=("$patch")
		used[$pkg]=1
	done
	# Each package's unmutated suite must pass first: otherwise every
	# mutant would look killed.
	for pkg in "${selected[@]}"; do
		if [ -z "${used[$pkg]:-}" ]; then
			continue
		fi
		log "baseline: $pkg's tests on an unmutated copy"
		fresh_tree
		if ! pkg_test "$pkg" "$out/baseline-${pkg//\//-}.log"; then
			tail -30 "$out/baseline-${pkg//\//-}.log" >&2
			echo "mutation.sh: $pkg's tests fail without any mutant; fix that first" >&2
			exit 1
		fi
	done
	log "hand-written mutants (${#todo[@]})"
	for patch in "${todo[@]}"; do
		name=$(basename "$patch" .patch)
		pkg=$(mutant_pkg "$patch")
		total[$pkg]=$((${total[$pkg]:-0} + 1))
		fresh_tree
		# -C1: a mutant still applies when lines near it have changed; its
		# own lines must match exactly.
		if ! (cd "$tree" && GIT_CEILING_DIRECTORIES=$work git apply -C1 "$root/$patch") 2>"$out/$name.apply"; then
			printf '%-12s %-45s %s\n' "NOT APPLIED" "$name" "$(head -1 "$out/$name.apply")"
			echo "mutation.sh: $patch no longer applies to the code: rewrite it against the current source" >&2
			failed=1
			continue
		fi
		start=$SECONDS
		status=0
		pkg_test "$pkg" "$out/$name.log" || status=$?
		if [ "$status" -eq 0 ]; then
			printf '%-12s %-45s %s\n' "SURVIVED" "$name" "$(sed -n '1s/^# //p' "$patch")"
			failed=1
		elif grep -qE '\[(build|setup) failed\]' "$out/$name.log"; then
			printf '%-12s %-45s %s\n' "BROKEN" "$name" "does not compile (log: $out/$name.log)"
			failed=1
		else
			killed[$pkg]=$((${killed[$pkg]:-0} + 1))
			tests=$(grep -oE -- '--- FAIL: [^ ]+' "$out/$name.log" | sed 's/--- FAIL: //; s|/.*||' | sort -u | paste -sd, - || true)
			if grep -q 'panic: test timed out' "$out/$name.log"; then
				tests="timed out"
			fi
			printf '%-12s %-45s %s\n' "killed" "$name" "by ${tests:-a failing test} ($((SECONDS - start)) s)"
			# A kill by another test than the one named may be a flaky test
			# failing by chance: worth a look.
			expected=$(sed -n '1s/^# [^ ]* (\(Test[A-Za-z0-9_]*\)).*/\1/p' "$patch")
			if [ -n "$expected" ] && [[ ",$tests," != *",$expected,"* ]]; then
				echo "             (the mutant names $expected as its killer: check the log $out/$name.log)"
			fi
		fi
	done
}

begin=$SECONDS
if [ "$mode" != hand ]; then
	gremlins=$(build_gremlins)
	for pkg in "${selected[@]}"; do
		run_gremlins "$pkg"
	done
fi
if [ "$mode" != gremlins ]; then
	run_hand
	log "hand-written mutants killed per package"
	for pkg in "${selected[@]}"; do
		if [ -n "${total[$pkg]:-}" ]; then
			echo "$pkg: ${killed[$pkg]:-0}/${total[$pkg]} killed"
		fi
	done
fi
log "done in $((SECONDS - begin)) s; reports and logs in $out"
exit "$failed"
