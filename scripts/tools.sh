#!/usr/bin/env bash
# Builds, once per version, the command-line tools the tests use that come
# as Go modules, into a cache folder outside the clone, and prints the
# path of the one asked for:
#
#   scripts/tools.sh helm          # -> ~/.cache/deploywatch/tools/helm-v3.22.0/helm
#   scripts/tools.sh axe           # -> ~/.cache/deploywatch/tools/axe-core-4.14.1/axe.min.js
#   scripts/tools.sh vulndb        # -> ~/.cache/deploywatch/tools/vulndb-<version>/db
#
# vulndb is the Go vulnerability database for govulncheck, built from the
# golang.org/x/vulndb module's OSV files with its own indexdb command, so
# that the scan needs no access to vuln.go.dev and gives the same answer
# for the same pinned version.
#
# axe-core (the accessibility checker the browser tests run in the page)
# comes from the npm registry, as its package's tarball.
#
# Cache: $DEPLOYWATCH_CACHE (default ~/.cache/deploywatch)/tools.
set -euo pipefail

CACHE=${DEPLOYWATCH_CACHE:-$HOME/.cache/deploywatch}/tools

declare -A modules=(
	[helm]="helm.sh/helm/v3/cmd/helm@v3.22.0"
	[govulncheck]="golang.org/x/vuln/cmd/govulncheck@v1.9.0"
)

tool=${1:?usage: scripts/tools.sh helm|govulncheck|axe|vulndb}

if [[ $tool == axe ]]; then
	version=4.14.1
	dir=$CACHE/axe-core-$version
	if [[ ! -s $dir/axe.min.js ]]; then
		echo "==> fetching axe-core $version from npm (once)" >&2
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null)
		tar -xzf "$tmp"/axe-core-*.tgz -C "$tmp" package/axe.min.js
		mkdir -p "$dir"
		mv "$tmp/package/axe.min.js" "$dir/axe.min.js"
	fi
	echo "$dir/axe.min.js"
	exit 0
fi
if [[ $tool == vulndb ]]; then
	version=v0.0.0-20261105234957-e22db6528018
	dir=$CACHE/vulndb-$version
	if [[ ! -s $dir/db/index/db.json ]]; then
		echo "==> building the Go vulnerability database $version (once)" >&2
		mkdir -p "$dir"
		GOBIN=$dir GOFLAGS=-mod=mod go install "golang.org/x/vulndb/cmd/indexdb@$version" >&2
		src=$(go mod download -json "golang.org/x/vulndb@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		rm -rf "$dir/db.tmp"
		"$dir/indexdb" -vulns "$src/data/osv" -out "$dir/db.tmp" >&2
		rm -rf "$dir/db"
		mv "$dir/db.tmp" "$dir/db"
	fi
	echo "$dir/db"
	exit 0
fi
module=${modules[$tool]:-}
if [[ -z $module ]]; then
	echo "scripts/tools.sh: unknown tool $tool (known: ${!modules[*]})" >&2
	exit 2
fi
dir=$CACHE/$tool-${module##*@}
if [[ ! -x $dir/$tool ]]; then
	echo "==> building $tool ${module##*@} from its Go module (once)" >&2
	mkdir -p "$dir"
	GOBIN=$dir GOFLAGS=-mod=mod go install "$module" >&2
fi
echo "$dir/$tool"
