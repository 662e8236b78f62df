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

source hack/lib.sh
# busybox-static: the root filesystem of test containers. runc, containerd
# and podman: the peer Berth is compared with and the engines it must stand
# in for; skopeo and docker.io (its dockerd): outside readers and writers
# of image archives; docker-registry: a registry Berth pulls from and pushes
# to; apache2-utils: htpasswd for the registry auth tests.
# uidmap, iproute2, procps, git: tools the tests and checks call.
need_packages busybox-static iproute2 procps iptables containernetworking-plugins runc containerd podman skopeo docker.io docker-registry apache2-utils uidmap git curl "${build_packages[@]}"
need_go

echo ">> go mod download"
go mod download

echo ">> generated files up to date"
go generate ./runtime/seccomp
# Compared with the committed file where there is a checkout to compare with.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git diff --exit-code -- runtime/seccomp/zsyscalls.go >/dev/null || { echo "runtime/seccomp/zsyscalls.go is stale: commit go generate's output" >&2; exit 1; }
fi

echo ">> gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:" $unformatted >&2
	exit 1
fi
go vet ./...
go vet -tags berthrunc ./cmd/berth
go vet -tags berthshim ./cmd/berth

echo ">> unit tests (race detector)"
go test -race -count=1 ./runtime/seccomp/ ./runtime/config/ ./runtime/cgroups/ ./image/content/ ./image/metadata/ ./engine/logs/ ./dockerapi/

echo ">> integration tests (root)"
go test -count=1 -timeout 20m ./...

echo ">> OCI runtime-tools validation (Berth and runc side by side)"
make -s build
test/conformance/runtime-tools.sh

echo ">> OCI distribution-spec conformance (berth registry serve, every area)"
test/conformance/distribution-spec.sh
