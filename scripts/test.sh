#!/usr/bin/env bash
# Runs all of pei's tests: installs what they need (scripts/setup.sh), then
# vet, staticcheck, the unit, golden and end-to-end tests, and a short fuzz
# run of the config loader and renderer.
set -euo pipefail
cd "$(dirname "$0")/.."
export PEI_CACHE=${PEI_CACHE:-/var/cache/pei}
scripts/setup.sh
export PATH=$PEI_CACHE/bin:$PATH
export COMPOSE_BAKE=false

echo "== gofmt, go vet, staticcheck"
unformatted=$(gofmt -l cmd internal e2e)
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

echo "== fuzz (config loader + renderer)"
go test ./internal/project -run '^$' -fuzz FuzzConfigure -fuzztime "${PEI_FUZZTIME:-30s}"

echo "== tests"
go test -count=1 -timeout 40m "$@" ./...
