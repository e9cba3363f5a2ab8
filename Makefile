# berth — daemonless single-binary container engine.
#
#   make build   bin/berth
#   make demo    build, import a busybox image into the default store and run
#                a real container (needs root, busybox-static, runc)
#   make test    go vet + all tests, including the end-to-end scenarios in
#                testdata/scripts (needs root)
#   make bench   container start latency: berth vs runc (vs podman if present)

GO       ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
TAGS     ?= exclude_graphdriver_btrfs
BIN      ?= bin/berth
TIMEOUT  ?= 30m
BUSYBOX_TAR ?= bin/busybox.tar

export CGO_ENABLED ?= 1

.PHONY: all build demo test vet bench clean

all: build

GIT_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  ?= -X github.com/berth-dev/berth/commands.GitCommit=$(GIT_COMMIT)

build:
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN) .

$(BUSYBOX_TAR): testdata/mkbusybox.sh
	@mkdir -p $(dir $@)
	sh testdata/mkbusybox.sh $@

# Uses the default store (/var/lib/berth, /run/berth unless BERTH_ROOT /
# BERTH_RUNROOT say otherwise). Re-importing replaces the busybox tag.
demo: build $(BUSYBOX_TAR)
	$(BIN) import $(BUSYBOX_TAR) busybox --change 'CMD ["sh"]'
	$(BIN) run --rm busybox echo "hello from a berth container"

vet:
	$(GO) vet -tags $(TAGS) ./...

# -p 1: packages one at a time, so the end-to-end scenarios (some of which
# measure CPU use or wait on timers) never share the 2 cores with unit tests.
# go test prints one "ok"/"FAIL" summary line per package (no -v); the
# end-to-end package also prints failing scenarios' transcripts.
test: vet
	$(GO) test -tags $(TAGS) -count=1 -p 1 -timeout $(TIMEOUT) ./...

bench: build
	BERTH=$(BIN) bash bench/run.sh

clean:
	rm -rf bin
