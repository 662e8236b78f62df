#!/usr/bin/env bash
# Build Berth, make a busybox image, load it into a throwaway image store,
# unpack it into a bundle and run a container from it with Berth's
# runc-compatible runtime. Needs root (namespaces, mounts, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."

source hack/lib.sh
# A static busybox is the image's root filesystem: it runs with no
# libraries.
need_packages busybox-static iptables containernetworking-plugins "${build_packages[@]}"
need_go

echo ">> building berth"
make -s build
go build -o _output/testimage ./internal/testimage/cmd/testimage

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
berth() { bin/berth --root "$work/store" "$@"; }
daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ]; then
		BERTH_HOST=unix://$work/store/run/berth.sock bin/berth rm -f demo-web >/dev/null 2>&1 || true
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
		ip link del berthdemo0 2>/dev/null || true
		remove_berth_rules berthdemo0
	fi
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

echo ">> berth daemon, and the docker-like CLI against it"
berth image unpack --remove "$work/bundle"
bin/berth --root "$work/store" daemon --bridge berthdemo0 --subnet 10.85.0.0/16 --cgroup-parent /berth-demo >"$work/daemon.log" 2>&1 &
daemon_pid=$!
export BERTH_HOST=unix://$work/store/run/berth.sock
for _ in $(seq 100); do [ -S "$work/store/run/berth.sock" ] && break; sleep 0.1; done
set -x
bin/berth run --rm berth.test/busybox sh -c 'echo "hello from berth run: $(hostname), $(ip -4 -o addr show eth0 | awk "{print \$4}")"'
bin/berth run -d --name demo-web -p 18765:8000 berth.test/busybox sh -c 'echo served by berth > /index.html; exec httpd -f -p 8000 -h /'
sleep 0.5
bin/berth ps
exec 3<>/dev/tcp/127.0.0.1/18765 && printf 'GET /index.html HTTP/1.0\r\n\r\n' >&3 && tail -1 <&3
bin/berth exec demo-web sh -c 'echo exec in $(hostname) as $(id -un)'
bin/berth logs demo-web
bin/berth rm -f demo-web
set +x
