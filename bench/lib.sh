# Shared by the bench scripts: a work directory cleaned up on exit (the
# daemons they start, what is mounted below it), a containerd of their
# own, medians, and writing a section of docs/benchmarks.md.

# bench_work PREFIX: makes $work under /var/tmp (a disk, as stores are,
# not a tmpfs) and removes it, and everything started or mounted in it,
# on exit. Daemons go in pids, or (from subshells) in $work/*/pid files.
pids=()
bench_work() {
	work=$(mktemp -d "/var/tmp/$1.XXXXXX")
	trap bench_cleanup EXIT
}
bench_cleanup() {
	local f p
	for f in "$work"/*/pid; do [ -f "$f" ] && pids+=("$(cat "$f")"); done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	{ grep -o " $work[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$work"
}

# start_containerd DIR: a containerd (no CRI plugin) with its root, state
# and socket in DIR; sets $sock, which ctr uses.
start_containerd() {
	local d=$1
	mkdir -p "$d"
	cat > "$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
TOML
	containerd --config "$d/config.toml" >"$d/log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
	sock=$d/containerd.sock
}
ctr() { command ctr --address "$sock" "$@"; }

# median of the numbers on standard input (spaces or lines).
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# write_section KEY FILE: FILE (which starts with <!-- KEY:start --> and
# ends with <!-- KEY:end -->) replaces that section of docs/benchmarks.md,
# or is added at its end.
write_section() {
	local key=$1 file=$2
	if grep -q "<!-- $key:start -->" docs/benchmarks.md 2>/dev/null; then
		awk -v f="$file" -v s="<!-- $key:start -->" -v e="<!-- $key:end -->" '
			$0 == s { while ((getline l < f) > 0) print l; skip = 1; next }
			$0 == e { skip = 0; next }
			!skip' docs/benchmarks.md > _output/benchmarks.md
	else
		{ [ -f docs/benchmarks.md ] && cat docs/benchmarks.md || printf '# Benchmarks\n\nEach section is written by the script it names; rerun it to refresh.\n'; echo; cat "$file"; } > _output/benchmarks.md
	fi
	mv _output/benchmarks.md docs/benchmarks.md
}
