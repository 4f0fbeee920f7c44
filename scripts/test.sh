#!/usr/bin/env bash
# Runs every test of deploywatch on a fresh machine: installs the real
# servers the integration tests need (Debian packages), then runs gofmt,
# go vet and the whole suite under the race detector. Missing servers are
# failures here, never skips (DEPLOYWATCH_REQUIRE_REAL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

# Every fuzz target (func Fuzz... in a _test.go file) runs for FUZZTIME
# after the tests; `./scripts/test.sh fuzz` runs only them, and
# `FUZZTIME=10m ./scripts/test.sh fuzz` runs each for longer. A finding is
# written to the package's testdata/fuzz/<target>/ and fails the run: it
# becomes a regular test case once committed.
#
# Go 1.26's fuzzing coordinator can end a healthy run with a bare "context
# deadline exceeded" as -fuzztime expires (golang/go#75804, fixed in Go
# 1.27). A run that fails so, without writing a failing input, is run
# once more; any other failure, or a second one, fails the suite.
fuzz_one() {
	local dir=$1 target=$2 fuzztime=$3 out status=0 race=0
	out=$(mktemp)
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir" 2>&1 | tee "$out" || status=$?
	if ((status != 0)) && tail -n 5 "$out" | grep -qx '    context deadline exceeded' &&
		[[ -z $(git status --porcelain -- "$dir/testdata/fuzz/$target") ]]; then
		race=1
	fi
	rm -f "$out"
	if ((status == 0 || race == 0)); then
		return "$status"
	fi
	log "fuzz $dir $target: the coordinator's deadline race (golang/go#75804), no failing input; once more"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir"
}
fuzz_all() {
	local fuzztime=${FUZZTIME:-20s} file target
	while read -r file; do
		for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
			log "fuzz $(dirname "$file") $target for $fuzztime"
			fuzz_one "$(dirname "$file")" "$target" "$fuzztime"
		done
	done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
}
if [[ ${1:-} == fuzz ]]; then
	fuzz_all
	log "fuzzing done in ${SECONDS}s"
	exit 0
fi

# --- what the tests need ---------------------------------------------------
apt_packages=(prometheus redis-server postgresql curl jq openssl chromium fonts-dejavu-core)
missing=()
for pkg in "${apt_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]} (Debian packages)"
	SUDO=""
	[[ $(id -u) -eq 0 ]] || SUDO="sudo"
	# Packages must not start their own daemons: the tests start what they need.
	policy=/usr/sbin/policy-rc.d
	created_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
		$SUDO chmod +x "$policy"
		created_policy=1
	fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if ((created_policy)); then $SUDO rm -f "$policy"; fi
fi
export PROMETHEUS_BIN=${PROMETHEUS_BIN:-$(command -v prometheus)}
export DEPLOYWATCH_REQUIRE_REAL=1
log "prometheus: $("$PROMETHEUS_BIN" --version 2>&1 | head -1)"
log "redis: $(redis-server --version)"
log "go: $(go version)"

# Tools built from their Go modules, once per version, into the cache.
export DEPLOYWATCH_HELM=${DEPLOYWATCH_HELM:-$(./scripts/tools.sh helm)}
log "helm: $("$DEPLOYWATCH_HELM" version --short)"

# The dashboard's tests drive Debian's Chromium and run axe-core (from
# npm, cached) in its pages; their screenshots are kept in artifacts/.
export DEPLOYWATCH_CHROMIUM=${DEPLOYWATCH_CHROMIUM:-$(command -v chromium)}
export DEPLOYWATCH_AXE=${DEPLOYWATCH_AXE:-$(./scripts/tools.sh axe)}
export DEPLOYWATCH_ARTIFACTS=${DEPLOYWATCH_ARTIFACTS:-$PWD/artifacts}
log "chromium: $("$DEPLOYWATCH_CHROMIUM" --version 2>/dev/null | head -1); screenshots in $DEPLOYWATCH_ARTIFACTS"

# A real Kubernetes control plane (etcd, kube-apiserver, controller-manager,
# scheduler, kwok), built once per version into a cache outside the clone.
log "kubernetes control plane"
./scripts/kube-cluster.sh build
KUBE_DIR=$(mktemp -d -t deploywatch-kube-XXXXXX)
cleanup() {
	./scripts/kube-cluster.sh down "$KUBE_DIR" || true
	rm -rf "$KUBE_DIR"
}
trap cleanup EXIT
./scripts/kube-cluster.sh up "$KUBE_DIR"
# shellcheck disable=SC1091
. "$KUBE_DIR/env"

# --- static checks ---------------------------------------------------------
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $unformatted ]]; then
	echo "gofmt wants to change:"; echo "$unformatted"; exit 1
fi
log "go vet"
go vet ./...
(cd bench/healthbench && go vet ./...)
(cd tools/image && go vet ./...)

# govulncheck over the whole module, against a pinned copy of the Go
# vulnerability database. A vulnerability reachable from our code in a
# module we require fails the run; one in the standard library is fixed by
# a newer patch release of Go than this machine's, and is listed (the
# README's Security section says how to build a release with it).
log "govulncheck"
vulnjson=$(mktemp)
"$(./scripts/tools.sh govulncheck)" -db "file://$(./scripts/tools.sh vulndb)" -format json ./... >"$vulnjson"
reachable=$(jq -r 'select(.finding != null and .finding.trace[0].function != null)
	| [.finding.osv, .finding.trace[0].module, (.finding.fixed_version // "none")] | @tsv' "$vulnjson" | sort -u)
rm -f "$vulnjson"
thirdparty=$(grep -v $'\tstdlib\t' <<<"$reachable" | grep . || true)
if [[ -n $thirdparty ]]; then
	echo "govulncheck: vulnerabilities reachable in required modules:"; echo "$thirdparty"; exit 1
fi
if [[ -n $reachable ]]; then
	echo "govulncheck: reachable in the standard library of $(go env GOVERSION), fixed in a newer Go:"
	awk -F'\t' '{printf "  %s fixed in %s\n", $1, $3}' <<<"$reachable"
fi

# --- tests -----------------------------------------------------------------
# Integration tests mostly wait on real servers and traffic, so they run
# many at a time even on two cores.
log "go test -race"
go test -race -count=1 -parallel 16 -timeout 25m ./... "$@"
log "fuzzing, ${FUZZTIME:-20s} a target"
fuzz_all
log "go test ./tools/image (the container image)"
(cd tools/image && go test -count=1 ./...)
log "all tests passed in ${SECONDS}s"
