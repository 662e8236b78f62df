#!/usr/bin/env bash
# Image unpack, Berth against umoci and containerd, side by side in one run:
# a large generated image (default 512 MiB in 8 layers of many files) is
#   - unpacked from an OCI layout: `berth image unpack` after `berth image
#     load` (the load timed on its own) against `umoci unpack`;
#   - imported and unpacked from an OCI archive: `berth image load` +
#     `berth image unpack` against `ctr image import` (which unpacks into
#     containerd's overlayfs snapshotter);
# and 10 images sharing one base are loaded and unpacked into each store to
# compare the disk they take. Writes the tables into docs/benchmarks.md.
#
#   bench/unpack.sh [size [rounds]]     (as root; default 512M, 3 rounds)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
size=${1:-512M}
rounds=${2:-3}
variants=10
shared=${SHARED_SIZE:-256M}

source hack/lib.sh
source bench/lib.sh
need_packages busybox-static umoci containerd bc
make -s build
go build -o _output/testimage ./internal/testimage/cmd/testimage
berth=$top/bin/berth

bench_work berth-bench-unpack

echo ">> generating a $size image in 8 layers and $variants images on a shared $shared base"
_output/testimage -large "$size" -layers 8 -format oci-layout -o "$work/layout" >/dev/null
tar -C "$work/layout" -cf "$work/large.tar" .
_output/testimage -large "$shared" -layers 4 -variants "$variants" -format oci-archive -o "$work/variants.tar"
# The size that counts is what lands on disk: the files' content, which
# the generator makes exactly this large.
content=$(numfmt --from=iec "$size")

start_containerd "$work/containerd"

now() { date +%s.%N; }
# settle: what one command wrote reaches the disk before the next starts.
settle() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
declare -A t
add() { t[$1]="${t[$1]:-} $2"; }
for r in $(seq "$rounds"); do
	echo ">> round $r of $rounds"
	settle; a=$(now)
	"$berth" --root "$work/berth-$r" image load -q -i "$work/large.tar"
	settle; b=$(now)
	"$berth" --root "$work/berth-$r" image unpack berth.test/large "$work/bundle-$r" -- true
	settle; c=$(now)
	umoci unpack --image "$work/layout:berth.test/large:latest" "$work/umoci-$r" >/dev/null
	settle; d=$(now)
	ctr -n "bench$r" image import --snapshotter overlayfs "$work/large.tar" >/dev/null
	settle; e=$(now)
	add berth-load "$(echo "$b - $a" | bc)"
	add berth-unpack "$(echo "$c - $b" | bc)"
	add berth-total "$(echo "$c - $a" | bc)"
	add umoci "$(echo "$d - $c" | bc)"
	add ctr "$(echo "$e - $d" | bc)"
	"$berth" --root "$work/berth-$r" image unpack --remove "$work/bundle-$r"
	rm -rf "$work/berth-$r" "$work/umoci-$r"
	ctr -n "bench$r" image rm berth.test/large:latest >/dev/null
	ctr -n "bench$r" content ls -q | xargs -r ctr -n "bench$r" content rm >/dev/null 2>&1 || true
done
mbps() { echo "scale=1; $content / 1048576 / $1" | bc; }
row() { # name, median seconds, peer seconds
	printf '| %s | %.2f | %s | %.2f |\n' "$1" "$2" "$(mbps "$2")" "$(echo "scale=4; $2 / $3" | bc)"
}
bu=$(echo "${t[berth-unpack]}" | median); um=$(echo "${t[umoci]}" | median)
bt=$(echo "${t[berth-total]}" | median); ct=$(echo "${t[ctr]}" | median)
bl=$(echo "${t[berth-load]}" | median)

echo ">> disk used by $variants images on one base"
"$berth" --root "$work/shared" image load -q -i "$work/variants.tar"
for k in $(seq 0 $((variants - 1))); do
	"$berth" --root "$work/shared" image unpack "berth.test/large-$k" "$work/sb-$k" -- true
	"$berth" --root "$work/shared" image unpack --remove "$work/sb-$k"
done
ctr -n shared image import --snapshotter overlayfs "$work/variants.tar" >/dev/null
# One of them alone (the archive's other nine differ only in a tiny top
# layer each, so the content is the same).
"$berth" --root "$work/one" image load -q -i "$work/variants.tar"
"$berth" --root "$work/one" image unpack berth.test/large-0 "$work/sb-one" -- true
"$berth" --root "$work/one" image unpack --remove "$work/sb-one"
sync
one_disk=$(du -sx --block-size=1M "$work/one" | cut -f1)
berth_disk=$(du -sx --block-size=1M "$work/shared" | cut -f1)
ctr_disk=$(du -sx --block-size=1M "$work/containerd/root" | cut -f1)

table=$(cat <<MD
Unpack of a $((content / 1048576)) MiB image (8 layers, $(find "$work/layout/blobs" -type f | wc -l) blobs; ${rounds} rounds, median; MB/s of file content):

| command | seconds | MB/s | time / peer |
|---|---|---|---|
$(row "berth image unpack (from its store)" "$bu" "$um")
$(row "umoci unpack (from the OCI layout)" "$um" "$um")
$(row "berth image load + unpack (from the archive)" "$bt" "$ct")
$(row "ctr image import (containerd 1.6, unpacks)" "$ct" "$ct")

\`berth image load\` alone: $(printf '%.2f' "$bl") s. Disk used by $variants images that share a ${shared} base
(each with its own small top layer), loaded and unpacked: Berth ${berth_disk} MiB, containerd ${ctr_disk} MiB
(content and snapshots), where one of them alone takes ${one_disk} MiB in Berth's store.
MD
)
echo "$table"

{
	echo "<!-- unpack:start -->"
	echo "## Images: unpack into snapshots"
	echo
	echo "\`bench/unpack.sh $size $rounds\`, $(date -u +%Y-%m-%d), Linux $(uname -r), $(nproc) cores, $(umoci --version), containerd $(containerd --version | awk '{print $3}')."
	echo "Each command starts from an empty store; page cache dropped and disk synced between commands."
	echo
	echo "$table"
	echo "<!-- unpack:end -->"
} > _output/bench-unpack.md
write_section unpack _output/bench-unpack.md
