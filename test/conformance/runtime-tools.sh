#!/usr/bin/env bash
# Runs the OCI runtime-tools validation suite (v0.9.0, the version the Go
# module proxy serves) against Berth, and against runc in the same run when
# runc is installed, then compares them test by test.
#
#   test/conformance/runtime-tools.sh [berth-runc path]
#
# Writes TAP per program to _output/runtime-tools/results/<runtime>/ and a
# summary to stdout. Exits non-zero if a test that runc passes fails under
# Berth (beyond the known-flaky ones listed below).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${1:-$top/bin/berth-runc}
work=$top/_output/runtime-tools
mkdir -p "$work/bin"
cd "$work"

# process_rlimits is flaky under runc on this kind of machine (its own
# RLIMIT_NOFILE handling races); the comparison does not hold it against
# Berth when runc happens to pass it.
flaky="process_rlimits"

if [ ! -f go.mod ]; then
	cat > go.mod <<'MOD'
module berth-conformance

go 1.22

require (
	github.com/opencontainers/runtime-tools v0.9.0
	github.com/opencontainers/runtime-spec v1.0.2
	github.com/opencontainers/selinux v1.10.1
)
MOD
fi
export GOFLAGS=-mod=mod
moddir=$(go mod download -json github.com/opencontainers/runtime-tools@v0.9.0 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
[ -n "$moddir" ] || { echo "cannot download runtime-tools v0.9.0" >&2; exit 1; }
progs=$(cd "$moddir/validation" && ls -d */ | tr -d / | grep -v '^util$')
# PROGS narrows the run to some programs; NO_PEER=1 skips runc.
progs=${PROGS:-$progs}

echo ">> building runtime-tools validation programs"
if [ ! -f bin/.built ] || [ "$(cat bin/.built 2>/dev/null)" != "$moddir" ]; then
	for p in $progs; do
		go build -o "bin/$p" "github.com/opencontainers/runtime-tools/validation/$p" || exit 1
	done
	CGO_ENABLED=0 go build -o runtimetest github.com/opencontainers/runtime-tools/cmd/runtimetest || exit 1
	echo "$moddir" > bin/.built
fi
# The programs unpack this into every bundle: without it every test fails.
cp "$moddir/rootfs-amd64.tar.gz" . || { echo "no rootfs-amd64.tar.gz in runtime-tools $moddir" >&2; exit 1; }
chmod u+w rootfs-amd64.tar.gz

# cleanup removes what a failing runtime leaves: containers, their mounts
# and bundles, and the cgroups the suite names.
cleanup() {
	local rt=$1 root=$2
	for id in $("$rt" --root "$root" list -q 2>/dev/null); do "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1; done
	grep -o ' /tmp/ocitest[^ ]*' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	rm -rf /tmp/ocitest* 2>/dev/null
	for d in /sys/fs/cgroup/*/cgrouptest /sys/fs/cgroup/*/*/cgrouptest /sys/fs/cgroup/cgrouptest; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}

run_suite() {
	local name=$1 rt=$2
	local out=results/$name root
	root=$(mktemp -d /run/rtt-root.XXXXXX)
	rm -rf "$out"; mkdir -p "$out"
	# runtime-tools calls "$RUNTIME <command> ...": give it the root too.
	local wrapper=$work/$name-wrapper
	printf '#!/bin/sh\nexec %s --root %s "$@"\n' "$rt" "$root" > "$wrapper"
	chmod +x "$wrapper"
	for p in $progs; do
		RUNTIME=$wrapper timeout 300 "bin/$p" > "$out/$p.tap" 2>"$out/$p.err"
		cleanup "$rt" "$root"
	done
	rm -rf "$root"
}

count() { # dir -> "passed failed skipped"
	cat "$1"/*.tap | awk '
		/^ok .*# [Ss][Kk][Ii][Pp]/ {s++; next}
		/^ok / {p++; next}
		/^not ok / {f++; next}
		END {printf "%d %d %d\n", p, f, s}'
}

echo ">> running against Berth ($berth)"
run_suite berth "$berth"
read -r bp bf bs < <(count results/berth)
echo "berth: $bp passed, $bf failed, $bs skipped"
# A run where nothing passes is a broken run (suite, rootfs or binary),
# whatever runc does.
if [ "$bp" -eq 0 ]; then
	echo "no test passed under Berth: see results/berth/*.err" >&2
	exit 1
fi

status=0
if [ -z "${NO_PEER:-}" ]; then
	command -v runc >/dev/null || { echo "runc is needed for the comparison (or NO_PEER=1)" >&2; exit 1; }
	echo ">> running against runc ($(runc --version | head -1))"
	run_suite runc "$(command -v runc)"
	read -r rp rf rs < <(count results/runc)
	echo "runc: $rp passed, $rf failed, $rs skipped"
	# Tests runc passes and Berth does not: per program, each description
	# passed n times under runc must pass n times under Berth (numbering
	# differs between runs, descriptions repeat).
	regress=0
	for p in $progs; do
		case " $flaky " in *" $p "*) continue ;; esac
		while IFS= read -r r; do
			[ -n "$r" ] && { echo "REGRESSION $p: $r"; regress=$((regress + 1)); }
		done < <(awk '
			/^ok / && !/# [Ss][Kk][Ii][Pp]/ { d = $0; sub(/^ok [0-9]+ - /, "", d); n[FILENAME == ARGV[1] ? 1 : 2, d]++; seen[d] = 1 }
			END { for (d in seen) if (n[1, d] > n[2, d]) printf "runc passes \"%s\" %d times, Berth %d\n", d, n[1, d], n[2, d] }
		' "results/runc/$p.tap" "results/berth/$p.tap")
	done
	echo "tests runc passes that Berth fails: $regress"
	[ "$regress" -eq 0 ] || status=1
	{
		echo "| runtime | passed | failed | skipped |"
		echo "|---|---|---|---|"
		echo "| berth | $bp | $bf | $bs |"
		echo "| runc ($(runc --version | head -1 | awk '{print $3}')) | $rp | $rf | $rs |"
	} > results/summary.md
fi
exit $status
