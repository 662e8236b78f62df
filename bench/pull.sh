#!/usr/bin/env bash
# Pull and push against a local registry, Berth against skopeo and
# containerd, side by side in one run: a generated many-layer image
# (default 256 MiB in 16 layers) in Debian's docker-registry (distribution
# 2.8) on loopback;
#   pull with unpack:    berth pull            vs  ctr pull (containerd 1.6)
#   fetch only:          berth pull --no-unpack vs skopeo copy to an OCI
#                        layout, ctr content fetch
#   push to an empty registry: berth push vs skopeo copy from an OCI layout
# Writes the table into docs/benchmarks.md.
#
#   bench/pull.sh [size [rounds]]      (as root; default 256M, 3 rounds)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
size=${1:-256M}
rounds=${2:-3}
layers=16

source hack/lib.sh
source bench/lib.sh
need_packages busybox-static skopeo containerd docker-registry curl bc python3
make -s build
go build -o _output/testimage ./internal/testimage/cmd/testimage
berth=$top/bin/berth

bench_work berth-bench-pull

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
registry() { # name -> address of a fresh docker-registry
	local p; p=$(port)
	mkdir -p "$work/$1"
	printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/$1/data" "$p" > "$work/$1/config.yml"
	docker-registry serve "$work/$1/config.yml" >"$work/$1/log" 2>&1 &
	echo $! > "$work/$1/pid"
	for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
	echo "127.0.0.1:$p"
}

echo ">> generating a $size image in $layers layers"
_output/testimage -large "$size" -layers "$layers" -format oci-layout -o "$work/layout" >/dev/null
reg=$(registry source)
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/layout:berth.test/large:latest" "docker://$reg/bench/large:1"
img=$reg/bench/large:1

# A fresh containerd for each ctr command: its content store is shared by
# all namespaces, so a second fetch of the same image would transfer
# nothing.
ctrd=0
fresh_containerd() {
	ctrd=$((ctrd + 1))
	start_containerd "$work/containerd-$ctrd"
}

now() { date +%s.%N; }
declare -A t
timed() { # key command...
	# What the previous command wrote reaches the disk first: its
	# writeback must not slow this one's syncs.
	sync
	local a b; a=$(now); "${@:2}" >/dev/null; b=$(now)
	t[$1]="${t[$1]:-} $(echo "$b - $a" | bc)"
}
for r in $(seq "$rounds"); do
	echo ">> round $r of $rounds"
	timed berth-pull "$berth" --root "$work/b$r" pull -q "$img"
	fresh_containerd
	timed ctr-pull ctr -n "p$r" image pull --plain-http "$img"
	timed berth-fetch "$berth" --root "$work/f$r" pull -q --no-unpack "$img"
	timed skopeo-fetch skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$img" "oci:$work/s$r:x"
	fresh_containerd
	timed ctr-fetch ctr -n "c$r" content fetch --plain-http "$img"
	dst=$(registry "push-b$r")
	timed berth-push "$berth" --root "$work/f$r" push -q "$img" "$dst/bench/large:1"
	dst=$(registry "push-s$r")
	timed skopeo-push skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/layout:berth.test/large:latest" "docker://$dst/bench/large:1"
	rm -rf "$work/b$r" "$work/s$r"
	"$berth" --root "$work/f$r" image rm "$img" >/dev/null
done
m() { echo "${t[$1]}" | median; }
content=$(numfmt --from=iec "$size")
row() { printf '| %s | %.2f | %.1f | %.2f |\n' "$1" "$2" "$(echo "scale=1; $content / 1048576 / $2" | bc)" "$(echo "scale=4; $2 / $3" | bc)"; }
table=$(cat <<MD
A generated $size image in $layers layers (compressed about 0.4 of that) in Debian's docker-registry on
loopback; $rounds rounds, median seconds; MB/s of uncompressed content; time relative to Berth.

| command | seconds | MB/s | time / berth |
|---|---|---|---|
$(row "berth pull (fetch and unpack)" "$(m berth-pull)" "$(m berth-pull)")
$(row "ctr pull (containerd 1.6, fetch and unpack)" "$(m ctr-pull)" "$(m berth-pull)")
$(row "berth pull --no-unpack" "$(m berth-fetch)" "$(m berth-fetch)")
$(row "skopeo copy to an OCI layout" "$(m skopeo-fetch)" "$(m berth-fetch)")
$(row "ctr content fetch" "$(m ctr-fetch)" "$(m berth-fetch)")
$(row "berth push (to an empty registry)" "$(m berth-push)" "$(m berth-push)")
$(row "skopeo copy from an OCI layout (to an empty registry)" "$(m skopeo-push)" "$(m berth-push)")
MD
)
echo "$table"
{
	echo "<!-- pull:start -->"
	echo "## Registries: pull and push"
	echo
	echo "\`bench/pull.sh $size $rounds\`, $(date -u +%Y-%m-%d), Linux $(uname -r), $(nproc) cores, $(skopeo --version), containerd $(containerd --version | awk '{print $3}'), docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}')."
	echo
	echo "$table"
	echo "<!-- pull:end -->"
} > _output/bench-pull.md
write_section pull _output/bench-pull.md
