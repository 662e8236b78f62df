# Shared by hack/demo.sh and hack/test.sh: what a fresh Debian machine needs
# before Berth builds.

# need_packages installs the Debian packages that are missing.
need_packages() {
	local missing=() p
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ]; then
		echo ">> apt-get install ${missing[*]}"
		apt-get update -qq >/dev/null || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# need_go makes sure a Go toolchain that can build go.mod's version is on
# hand: Debian's golang-go if there is none, which then fetches the version
# go.mod names from the module proxy (GOTOOLCHAIN=auto, Go 1.21 and later).
need_go() {
	if ! command -v go >/dev/null; then
		need_packages golang-go
	fi
	if ! go version >/dev/null 2>&1; then
		echo "Go $(sed -n 's/^go //p' go.mod) is needed: $(go version 2>&1 | tail -1)" >&2
		echo "install it from https://go.dev/dl or let GOTOOLCHAIN=auto fetch it (Go 1.21 or later)" >&2
		exit 1
	fi
}

# The C side of the runtime (runtime/nsenter) is built with cgo and linked
# statically: gcc and libc6-dev's libc.a.
build_packages=(gcc libc6-dev)

# remove_berth_rules BRIDGE: the iptables rules a berth daemon made for
# the network on BRIDGE (its masquerade and isolation rules), for scripts
# that ran a daemon with a default network of their own.
remove_berth_rules() {
	local bridge=$1 table
	for table in filter nat; do
		iptables -w -t "$table" -S 2>/dev/null | grep -- "berth network" | grep -E -- "-[io] $bridge( |$)" | sed 's/^-A /-D /' |
			while read -r rule; do eval "iptables -w -t $table $rule" || true; done
	done
}
