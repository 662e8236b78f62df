#!/usr/bin/env bash
# Build Berth, make a busybox image, load it into a throwaway image store,
# unpack it into a bundle and run a container from it with Berth's
# runc-compatible runtime. Needs root (namespaces, mounts, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."

source hack/lib.sh
# A static busybox is the image's root filesystem: it runs with no
# libraries.
need_packages busybox-static "${build_packages[@]}"
need_go

echo ">> building berth"
make -s build
go build -o _output/testimage ./internal/testimage/cmd/testimage

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
berth() { bin/berth --root "$work/store" "$@"; }
cleanup() {
	berth image unpack --remove "$work/bundle" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo ">> a busybox image, as docker save would write it"
_output/testimage -busybox -format docker-archive -o "$work/busybox.tar"
berth image load -i "$work/busybox.tar"
berth image ls

echo ">> berth image unpack berth.test/busybox $work/bundle"
berth image unpack -u nobody berth.test/busybox "$work/bundle" -- \
	sh -c 'echo "hello from a berth container: host $(hostname), pid $$, $(id)"; echo "its root:"; ls /'

echo ">> berth runtime run"
bin/berth runtime --root /run/berth/demo run --bundle "$work/bundle" "demo-$$"
