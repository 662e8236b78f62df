#!/usr/bin/env bash
# Berth's OCI runtime against runc and crun, side by side in one run:
# `run` of /bin/true in a busybox bundle, N rounds with the order rotating.
# Prints median wall time, CPU time and peak RSS with ratios to Berth, and
# writes the table into docs/benchmarks.md.
#
#   bench/runtime.sh [rounds]      (as root; default 200 rounds)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
source bench/lib.sh
rounds=${1:-200}

missing=()
for p in busybox-static runc crun; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq >/dev/null || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
make -s build
go build -o _output/runbench ./bench/runbench

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin" "$work/state"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/true"
bin/berth runtime spec --bundle "$work/bundle"
# The same config for all three: Berth's default, not interactive, running
# /bin/true, declared 1.0.2 (crun 1.8.1 refuses newer versions).
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"ociVersion": "[^"]*"/"ociVersion": "1.0.2"/' \
	-e 's|^\(\t*\)"sh"$|\1"/bin/true"|' "$work/bundle/config.json"

# berth-runc is the runtime as containerd, podman and docker call it (the
# runtime-only build); "berth runtime" is the same code in the full binary,
# which also maps and initialises everything else it holds.
cmds=(
	"berth-runc=$top/bin/berth-runc --root $work/state/berth run --bundle $work/bundle b{i}"
	"berth-runtime=$top/bin/berth runtime --root $work/state/berth-full run --bundle $work/bundle f{i}"
	"runc=runc --root $work/state/runc run --bundle $work/bundle r{i}"
	"crun=crun --root $work/state/crun run --bundle $work/bundle c{i}"
	"unshare-floor=unshare --fork --pid --mount --net --uts --ipc true"
)
# crun 1.8.1 refuses this machine's hybrid layout while its cgroup2 mount
# holds a controller. All four run in one private mount namespace without
# that mount; the host's own mounts stay as they are. The runtimes keep
# their state on a tmpfs there, as under /run where they normally do.
table=$(unshare -m bash -c '
	if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
	mount -t tmpfs tmpfs "$1"; shift
	exec "$@"' _ "$work/state" _output/runbench -n "$rounds" -markdown "${cmds[@]}")
echo "$table"

kernel=$(uname -r)
{
	echo "<!-- runtime:start -->"
	echo "## Runtime: \`run\` of /bin/true in a busybox bundle"
	echo
	echo "\`bench/runtime.sh $rounds\`, $(date -u +%Y-%m-%d), Linux $kernel, $(nproc) cores, $(runc --version | head -1), crun $(crun --version | head -1 | awk '{print $3}')."
	echo "$rounds rounds, each running every command once in rotating order; CPU is user+system of the"
	echo "command and the processes it waited for; peak RSS is the largest ru_maxrss seen."
	echo "All in a private mount namespace without the cgroup2 mount (crun 1.8.1 refuses the hybrid layout),"
	echo "state on a tmpfs. berth-runc is bin/berth-runc, the runtime-only build that containerd, podman"
	echo "and docker run; berth-runtime is \`berth runtime\` in the full binary."
	echo
	echo "$table"
	echo "<!-- runtime:end -->"
} > _output/bench-runtime.md
write_section runtime _output/bench-runtime.md
