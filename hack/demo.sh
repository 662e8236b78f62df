#!/usr/bin/env bash
# Build Berth, make a busybox bundle, and run a container from it with the
# runc-compatible runtime. Needs root (namespaces, mounts, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."

source hack/lib.sh
# A static busybox is the root filesystem: it runs with no libraries.
need_packages busybox-static "${build_packages[@]}"
need_go

echo ">> building berth"
make -s build

bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$a"; done
bin/berth runtime spec --bundle "$bundle"
# A non-interactive program instead of the default shell.
sed -i 's/"terminal": true/"terminal": false/' "$bundle/config.json"
python3 - "$bundle/config.json" <<'PY' 2>/dev/null || sed -i 's/"sh"$/"sh", "-c", "echo hello from a berth container: $(hostname), pid $$, uid $(id -u); ls \/"/' "$bundle/config.json"
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["sh", "-c", "echo hello from a berth container: host $(hostname), pid $$, uid $(id -u); echo its root:; ls /"]
json.dump(c, open(p, "w"), indent=1)
PY

echo ">> berth runtime run demo  (bundle $bundle)"
bin/berth runtime --root /run/berth/demo run --bundle "$bundle" "demo-$$"
