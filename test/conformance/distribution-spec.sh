#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against `berth registry
# serve` with every area enabled (sha512 content, sparse manifests, upload
# cancel, digest headers, tag parameters, referrers included). Exits
# non-zero if any test fails, is skipped or is disabled.
#
#   test/conformance/distribution-spec.sh [berth path]
#
# Results (results.yaml, junit.xml, report.html) go to
# _output/distribution-spec/results.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=${1:-$top/bin/berth}
version=v0.0.0-20260831232431-97274622c111
work=$top/_output/distribution-spec
rm -rf "$work/results" "$work/registry"
mkdir -p "$work/bin"
GOBIN=$work/bin go install "github.com/opencontainers/distribution-spec/conformance@$version"

# A free port on loopback.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 5071)
"$berth" registry serve --addr "127.0.0.1:$port" --root "$work/registry" >"$work/registry.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
	sleep 0.1
done

export OCI_REGISTRY=127.0.0.1:$port OCI_TLS=disabled OCI_VERSION=1.1 OCI_RESULTS_DIR=$work/results
export OCI_API_BLOBS_DIGEST_HEADER=true OCI_API_BLOBS_UPLOAD_CANCEL=true
export OCI_API_MANIFESTS_DIGEST_HEADER=true OCI_API_MANIFESTS_TAG_PARAM=true OCI_DATA_SPARSE=true
status=0
(cd "$work" && "$work/bin/conformance") >"$work/conformance.log" 2>&1 || status=$?
summary=$(sed -n '/^OCI Conformance Result/,/Total/p' "$work/conformance.log")
echo "$summary"
if [ "$status" != 0 ] || ! echo "$summary" | grep -qE 'FAIL\.+: +0$' || ! echo "$summary" | grep -qE 'Skip\.+: +0$' || ! echo "$summary" | grep -qE 'Disabled\.+: +0$'; then
	grep 'level=WARN' "$work/conformance.log" | head -20 >&2
	echo "distribution-spec conformance: failures (see $work/conformance.log)" >&2
	exit 1
fi
