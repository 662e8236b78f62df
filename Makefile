# Berth's entry points. Everything here runs as root: containers need it.
GO ?= go
BIN := bin/berth

.PHONY: build demo test test-unit bench clean

# Static, with Go's own resolver and user lookup: no libc to load, which is
# a millisecond off every container start.
BUILDFLAGS := -tags netgo,osusergo -ldflags '-extldflags=-static -s -w'
BUILDFLAGS_RUNC := -tags netgo,osusergo,berthrunc -ldflags '-extldflags=-static -s -w'
BUILDFLAGS_SHIM := -tags netgo,osusergo,berthshim -ldflags '-extldflags=-static -s -w'

# bin/berth is everything; bin/berth-runc the OCI runtime's CLI alone (the
# same code, built with -tags berthrunc): what containerd, podman and
# docker start for every container operation, so it carries nothing else.
# bin/berth also acts as berth-runc through a symlink of that name.
# bin/berth-shim is the container monitor alone (-tags berthshim): one runs
# per container for its whole life, so it carries nothing else either.
build:
	$(GO) build $(BUILDFLAGS) -o $(BIN) ./cmd/berth
	rm -f bin/berth-runc bin/berth-shim
	$(GO) build $(BUILDFLAGS_RUNC) -o bin/berth-runc ./cmd/berth
	$(GO) build $(BUILDFLAGS_SHIM) -o bin/berth-shim ./cmd/berth

# Build Berth and run a container from a busybox bundle it prepares itself.
demo:
	hack/demo.sh

# Install what the tests need and run all of them.
test:
	hack/test.sh

# Only the tests that need neither root nor extra packages.
test-unit:
	$(GO) test -race ./runtime/seccomp/ ./runtime/config/ ./runtime/cgroups/ ./image/content/ ./image/metadata/ ./engine/logs/ ./dockerapi/

bench:
	bench/runtime.sh
	bench/unpack.sh
	bench/pull.sh
	bench/engine.sh

clean:
	rm -rf bin _output
