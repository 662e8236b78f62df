#!/usr/bin/env bash
# Install what Berth's tests need on a fresh Debian machine and run them all:
# unit tests (with -race where no root is needed), the integration tests
# (real containers, as root), and the conformance suites.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "hack/test.sh: run as root; the tests create namespaces, mounts and cgroups" >&2
	exit 1
fi

# busybox-static: the root filesystem of test containers. runc, crun,
# containerd and podman: the peers Berth is compared with and must stand in
# for. uidmap, iproute2, procps: tools the tests call.
pkgs=(busybox-static iproute2 procps runc crun containerd podman uidmap)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	echo ">> apt-get install ${missing[*]}"
	apt-get update -qq >/dev/null || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo ">> go mod download"
go mod download

echo ">> generated files up to date"
go generate ./runtime/seccomp
git diff --exit-code -- runtime/seccomp/zsyscalls.go 2>/dev/null || { echo "runtime/seccomp/zsyscalls.go is stale: commit go generate's output" >&2; exit 1; }

echo ">> gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:" $unformatted >&2
	exit 1
fi
go vet ./...

echo ">> unit tests (race detector)"
go test -race -count=1 ./runtime/seccomp/ ./runtime/config/ ./runtime/cgroups/

echo ">> integration tests (root)"
go test -count=1 -timeout 20m ./...

echo ">> OCI runtime-tools validation (Berth and runc side by side)"
make -s build
test/conformance/runtime-tools.sh
