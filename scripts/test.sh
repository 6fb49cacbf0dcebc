#!/usr/bin/env bash
# Runs all of pei's tests: installs what they need (scripts/setup.sh), then
# gofmt, vet, staticcheck, short fuzz runs of the config loader and
# renderer and of recipe unpacking ($PEI_FUZZTIME each, default 30s), the
# unit and golden tests, and the end-to-end tests, each of those in a test
# process of its own so that a
# crash (a panic in any goroutine, an exit) fails only that test. It ends
# with a summary (scripts/testreport): tests run, passed, failed, crashed and
# skipped, and time per package; it fails if a test failed or crashed, and
# with CI set also if one skipped.
#
# Arguments are go test's: packages (default ./...) and the flags -run,
# -skip, -short, -count, -timeout, -failfast, -parallel, -cpu, -shuffle,
# -race, -tags, and -v (show every test's output).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	echo "usage: scripts/test.sh [-run RE] [-skip RE] [-short] [-count N] [-timeout D] [-failfast] [-parallel N] [-cpu LIST] [-shuffle S] [-race] [-tags T] [-v] [packages]" >&2
	exit 2
}
# unit_flags go to `go test` for the unit packages, bin_flags (the same as
# -test.* flags) to each end-to-end test process, build_flags to both builds.
pkgs=() unit_flags=() bin_flags=() build_flags=() report_flags=() run=""
while [ $# -gt 0 ]; do
	arg=$1
	shift
	name=${arg%%=*}
	case $arg in
	-run=* | -run)
		if [ "$arg" = -run ]; then
			[ $# -gt 0 ] || usage
			run=$1
			shift
		else
			run=${arg#-run=}
		fi
		unit_flags+=(-run "$run")
		;;
	-v) report_flags+=(-v) ;;
	-short | -failfast) unit_flags+=("$arg") bin_flags+=("-test.${arg#-}") ;;
	-race) build_flags+=("$arg") ;;
	-tags=*) build_flags+=("$arg") ;;
	-tags)
		[ $# -gt 0 ] || usage
		build_flags+=("$arg=$1")
		shift
		;;
	-skip=* | -count=* | -timeout=* | -parallel=* | -cpu=* | -shuffle=*) unit_flags+=("$arg") bin_flags+=("-test.${arg#-}") ;;
	-skip | -count | -timeout | -parallel | -cpu | -shuffle)
		[ $# -gt 0 ] || usage
		unit_flags+=("$arg=$1") bin_flags+=("-test.${arg#-}=$1")
		shift
		;;
	-*)
		echo "scripts/test.sh: unknown flag $name" >&2
		usage
		;;
	*) pkgs+=("$arg") ;;
	esac
done
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

export PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
scripts/setup.sh
export PATH=$PEI_CACHE/bin:$PATH
export COMPOSE_BAKE=false

echo "== gofmt, go vet, staticcheck"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
staticcheck_version=$(awk '$1 == "honnef.co/go/tools" {print $2}' tools/go.mod)
if [ ! -x "$PEI_CACHE/bin/staticcheck-$staticcheck_version" ]; then
	(cd tools && go build -o "$PEI_CACHE/bin/staticcheck-$staticcheck_version" honnef.co/go/tools/cmd/staticcheck)
fi
"$PEI_CACHE/bin/staticcheck-$staticcheck_version" ./...

echo "== fuzz (config loader + renderer; recipe unpacking)"
# Budgets are counts of runs, not durations: Go 1.26's fuzz coordinator
# can fail a run whose -fuzztime duration ends while a starved worker is
# mid-call ("context deadline exceeded", no failing input; go.dev/issue/75804,
# fixed in Go 1.27). A count has no deadline to race; each takes about 30 s
# on an idle 2-core machine (longer on a busy one). PEI_FUZZTIME overrides both (e.g. 5m or 1000000x).
go test ./internal/project -run '^$' -fuzz FuzzConfigure -fuzztime "${PEI_FUZZTIME:-100000x}"
go test ./internal/recipe -run '^$' -fuzz '^FuzzExtract$' -fuzztime "${PEI_FUZZTIME:-8000x}"

echo "== tests"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/testreport" ./scripts/testreport
e2e=github.com/pei-dev/pei/e2e
units=() with_e2e=false
while read -r pkg; do
	if [ "$pkg" = "$e2e" ]; then with_e2e=true; else units+=("$pkg"); fi
done < <(go list "${build_flags[@]}" "${pkgs[@]}")

# e2e_test NAME runs one end-to-end test in its own process, as go test
# would (-test.paniconexit0, and its FAIL line if the process exits non-zero,
# which ends the test2json stream of a process that died mid-test).
e2e_test() {
	local rc=0
	(cd e2e && PEI_E2E_PEI=$work/pei exec "$work/e2e.test" -test.paniconexit0 -test.timeout=30m -test.count=1 "${bin_flags[@]}" \
		-test.v=test2json -test.run "^$1\$$run_rest" 2>&1 </dev/null) || rc=$?
	if [ "$rc" != 0 ]; then
		printf '\nexit status %d\n\026FAIL\t%s\t(the test process exited)\n' "$rc" "$e2e"
	fi
}

# -run's first part picks the end-to-end tests; the rest (subtests) is
# passed on to each.
run_top=${run%%/*} run_rest=""
[ "$run_top" = "$run" ] || run_rest=/${run#*/}

{
	if [ ${#units[@]} -gt 0 ]; then
		go test -json -count=1 -timeout 20m "${build_flags[@]}" "${unit_flags[@]}" "${units[@]}" 2>&1 || true
	fi
	if $with_e2e; then
		# Built once: the test binary, and the pei binary its tests run.
		if go test -c -json -o "$work/e2e.test" "${build_flags[@]}" ./e2e 2>&1 && go build -o "$work/pei" ./cmd/pei 2>&1; then
			mapfile -t tests < <(cd e2e && "$work/e2e.test" -test.list "${run_top:-.}" | grep -E '^(Test|Example|Fuzz)')
			for i in "${!tests[@]}"; do
				echo "== e2e ${tests[i]} ($((i + 1))/${#tests[@]})"
				e2e_test "${tests[i]}" | go tool test2json -t -p "$e2e"
			done
		else
			printf '{"Action":"fail","Package":"%s","FailedBuild":"%s"}\n' "$e2e" "$e2e"
		fi
	fi
} | "$work/testreport" "${report_flags[@]}"
