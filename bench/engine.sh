#!/usr/bin/env bash
# The engine side by side with its peers, in one run, on the same busybox
# image already in each one's store:
#   run --rm IMAGE true, no network:  berth, ctr (containerd 1.6), docker
#                                     (dockerd 20.10), podman 4.3 (runc)
#   run --rm IMAGE true, default network: berth (CNI bridge) vs podman (CNI)
#   memory per running container (20 x sleep): cgroup-charged, and the
#                                     monitor's RSS (berth-shim, conmon)
#   idle daemon RSS:                  berth daemon vs containerd, dockerd
# Writes the table into docs/benchmarks.md.
#
#   bench/engine.sh [rounds]      (as root; default 10)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rounds=${1:-10}

source hack/lib.sh
source bench/lib.sh
need_packages busybox-static containerd docker.io podman runc iptables containernetworking-plugins procps
make -s build
go build -o _output/testimage ./internal/testimage/cmd/testimage
berth=$top/bin/berth
bench_work berth-bench-engine
trap 'bench_cleanup; ip link del berthbench0 2>/dev/null; remove_berth_rules berthbench0' EXIT
_output/testimage -busybox -format docker-archive -o "$work/busybox.tar"
img=berth.test/busybox:latest

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# pss_kib: the process's proportional set size, shared pages (a monitor's
# program text, mapped by every one of them) divided among their users.
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
now() { date +%s.%N; }
# timed N command...: the median wall time of N runs, in ms.
timed() {
	local n=$1 i s e
	shift
	for i in $(seq "$n"); do
		s=$(now)
		"$@" >/dev/null
		e=$(now)
		echo "($e - $s) * 1000" | bc
	done | median
}

echo ">> berth daemon"
mkdir -p "$work/berth"
"$berth" --root "$work/berth" image load -i "$work/busybox.tar" >/dev/null
"$berth" --root "$work/berth" daemon --bridge berthbench0 --subnet 10.86.0.0/16 --cgroup-parent /berth-bench >"$work/berth/log" 2>&1 &
bpid=$!
pids+=($bpid)
for _ in $(seq 100); do [ -S "$work/berth/run/berth.sock" ] && break; sleep 0.05; done
export BERTH_HOST=unix://$work/berth/run/berth.sock
b() { "$berth" "$@"; }
b run --rm --network none $img true   # warm the page cache
sleep 1
berth_idle=$(rss_kib $bpid)

echo ">> containerd"
start_containerd "$work/containerd"
ctr images import "$work/busybox.tar" >/dev/null
sleep 1
ctrd_idle=$(rss_kib "$(pgrep -f "containerd --config $work/containerd/config.toml")")

echo ">> dockerd"
mkdir -p "$work/docker"
dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" --host "unix://$work/docker/sock" \
	--pidfile "$work/docker/dpid" --bridge none --iptables=false --ip6tables=false >"$work/docker/log" 2>&1 &
pids+=($!)
d() { docker -H "unix://$work/docker/sock" "$@"; }
for _ in $(seq 100); do d version >/dev/null 2>&1 && break; sleep 0.2; done
d load -i "$work/busybox.tar" >/dev/null
sleep 2
dockerd_idle=$(( $(rss_kib "$(cat "$work/docker/dpid")") + $(rss_kib "$(pgrep -f "containerd --config $work/docker/exec/containerd/containerd.toml" | head -1)") ))

echo ">> podman"
pm="$work/pm"
mkdir -p "$pm/tmp"
p() { TMPDIR=$pm/tmp podman --root "$pm/root" --runroot "$pm/rr" --tmpdir "$pm/lp" --storage-driver vfs \
	--cgroup-manager cgroupfs --events-backend file --runtime runc "$@"; }
p load -i "$work/busybox.tar" >/dev/null
plim=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

echo ">> run --rm true, $rounds rounds each (after one to warm each up)"
b run --rm $img true >/dev/null; ctr run --rm $img warm true >/dev/null; d run --rm --network none $img true >/dev/null
p run --rm --network none "${plim[@]}" $img true >/dev/null; p run --rm "${plim[@]}" $img true >/dev/null
sleep 2
t_berth_none=$(timed "$rounds" b run --rm --network none $img true)
t_ctr=$(timed "$rounds" ctr run --rm $img bench-ctr true)
t_docker=$(timed "$rounds" d run --rm --network none $img true)
t_podman_none=$(timed "$rounds" p run --rm --network none "${plim[@]}" $img true)
t_berth_net=$(timed "$rounds" b run --rm $img true)
t_podman_net=$(timed "$rounds" p run --rm "${plim[@]}" $img true)

echo ">> 20 running containers each"
cgmem() { # cgroup dirs... -> KiB charged
	local sum=0 f
	for f in "$@"; do sum=$((sum + $(cat "$f/memory.usage_in_bytes"))); done
	echo $((sum / 1024))
}
for i in $(seq 20); do b run -d --network none --name s$i $img sleep 1000 >/dev/null; done
for i in $(seq 20); do p run -d --network none "${plim[@]}" --name s$i $img sleep 1000 >/dev/null; done
sleep 2
bdirs=(); for id in $(b ps -q --no-trunc); do bdirs+=(/sys/fs/cgroup/memory/berth-bench/$id); done
pdirs=(); for id in $(p ps -q --no-trunc); do pdirs+=($(find /sys/fs/cgroup/memory -maxdepth 3 -type d -name "*$id*" | grep -v conmon | head -1)); done
berth_cg=$(cgmem "${bdirs[@]}")
podman_cg=$(cgmem "${pdirs[@]}")
berth_mon=0; berth_pss=0
for pid in $(pgrep -f "berth-shim $work/berth/run"); do berth_mon=$((berth_mon + $(rss_kib $pid))); berth_pss=$((berth_pss + $(pss_kib $pid))); done
podman_mon=0; podman_pss=0
for pid in $(pgrep -f "conmon.*$pm"); do podman_mon=$((podman_mon + $(rss_kib $pid))); podman_pss=$((podman_pss + $(pss_kib $pid))); done
berth_busy=$(rss_kib $bpid)
for i in $(seq 20); do b rm -f s$i >/dev/null; p rm -f -t 0 s$i >/dev/null; done

mib() { echo "scale=2; $1 / 1024" | bc; }
per() { echo "scale=2; $1 / 20 / 1024" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
out=_output/engine-bench.md
{
	echo "<!-- engine:start -->"
	echo "## Engine: run, memory, idle daemon (bench/engine.sh)"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, median of $rounds runs; the busybox image in each store already."
	echo "Peers: containerd $(containerd --version | awk '{print $3}'), docker $(dockerd --version | awk '{print $3}' | tr -d ,), podman $(podman --version | awk '{print $3}') (runc, CNI)."
	echo
	echo "| run --rm IMAGE true | ms | berth is |"
	echo "|---|---:|---:|"
	echo "| berth, --network none | $t_berth_none | 1.00 |"
	echo "| ctr run --rm | $t_ctr | $(ratio "$t_berth_none" "$t_ctr")x of it |"
	echo "| docker run --rm --network none | $t_docker | $(ratio "$t_berth_none" "$t_docker")x of it |"
	echo "| podman run --rm --network none | $t_podman_none | $(ratio "$t_berth_none" "$t_podman_none")x of it |"
	echo "| berth, default network (CNI bridge) | $t_berth_net | 1.00 |"
	echo "| podman, default network (CNI bridge) | $t_podman_net | $(ratio "$t_berth_net" "$t_podman_net")x of it |"
	echo
	echo "| 20 x sleep, per container | cgroup-charged MiB | monitor PSS MiB | cgroup + PSS | monitor RSS MiB |"
	echo "|---|---:|---:|---:|---:|"
	echo "| berth (berth-shim) | $(per "$berth_cg") | $(per "$berth_pss") | $(per $((berth_cg + berth_pss))) | $(per "$berth_mon") |"
	echo "| podman (conmon) | $(per "$podman_cg") | $(per "$podman_pss") | $(per $((podman_cg + podman_pss))) | $(per "$podman_mon") |"
	echo
	echo "PSS counts shared pages (a monitor's program text, mapped by all 20) once in all; RSS counts them in each."
	echo
	echo "| idle daemon RSS | MiB |"
	echo "|---|---:|"
	echo "| berth daemon | $(mib "$berth_idle") (with 20 containers: $(mib "$berth_busy")) |"
	echo "| containerd | $(mib "$ctrd_idle") |"
	echo "| dockerd + its containerd | $(mib "$dockerd_idle") |"
	echo "<!-- engine:end -->"
} > "$out"
cat "$out"
write_section engine "$out"
