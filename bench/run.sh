#!/usr/bin/env bash
# bench/run.sh — container start-to-exit latency of `berth run --rm`
# compared with plain OCI runtimes on the same busybox rootfs.
#
#   bash bench/run.sh [N]          N runs per engine (default 50; env N too)
#
# Environment:
#   BERTH=path/to/berth   binary to measure (default bin/berth; built if missing)
#   HYPERFINE=0           don't use hyperfine even if installed
#   WARMUP=3              untimed runs before each series
#
# What is measured (each from a shell, wall clock, one run at a time):
#   berth   berth run --rm --network none busybox true      (fresh store in a temp dir)
#   runc    runc run on an OCI bundle: busybox rootfs + `runc spec`, args ["true"],
#           terminal false, new pid/net/ipc/uts/mount namespaces ("network none")
#   crun    same bundle, if crun is installed and works here
#   podman  podman run --rm --network none <busybox imported> true, if installed
#
# Needs root, runc, busybox-static. Prints medians (ms) and ratios.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-${N:-50}}
WARMUP=${WARMUP:-3}
BERTH=${BERTH:-bin/berth}
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
	echo "bench: must run as root" >&2
	exit 1
fi
if [ ! -x "$BERTH" ]; then
	echo "== building $BERTH"
	go build -tags exclude_graphdriver_btrfs -o "$BERTH" .
fi
BERTH=$(readlink -f "$BERTH")

TMP=$(mktemp -d /tmp/berth-bench.XXXXXX)
RUNC_ROOT=$TMP/runc-state
CRUN_ROOT=$TMP/crun-state
cleanup() {
	set +e
	if [ -n "${BERTH_ROOT:-}" ]; then
		for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
	fi
	if command -v podman >/dev/null 2>&1 && [ -n "${PODMAN_IMPORTED:-}" ]; then
		podman rmi -f berth-bench-busybox >/dev/null 2>&1
	fi
	# Anything still mounted under the temp dir (the store's overlay home
	# if berth left it), deepest first.
	grep -o " $TMP[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$TMP"
}
trap cleanup EXIT

echo "== preparing busybox image and OCI bundle in $TMP"
sh testdata/mkbusybox.sh "$TMP/busybox.tar" 2>/dev/null
export BERTH_ROOT=$TMP/root BERTH_RUNROOT=$TMP/run
"$BERTH" import "$TMP/busybox.tar" busybox --change 'CMD ["sh"]' >/dev/null

BUNDLE=$TMP/bundle
mkdir -p "$BUNDLE/rootfs"
tar -xf "$TMP/busybox.tar" -C "$BUNDLE/rootfs" --numeric-owner
(cd "$BUNDLE" && runc spec)
# args ["true"], no terminal; runc's default spec already has its own
# network namespace with only lo (= --network none).
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e '/"args": \[/,/\]/ s/"sh"/"true"/' "$BUNDLE/config.json"
grep -q '"terminal": false' "$BUNDLE/config.json"
grep -q '"true"' "$BUNDLE/config.json"
grep -q '"type": "network"' "$BUNDLE/config.json"

# ---------------------------------------------------------------------------
have_hyperfine=0
if [ "${HYPERFINE:-1}" != 0 ] && command -v hyperfine >/dev/null 2>&1; then
	have_hyperfine=1
fi

# measure NAME CMD... : runs CMD N times (after WARMUP), prints and records
# the median in ms in $TMP/NAME.median.
measure() {
	local name=$1
	shift
	local cmd="$*"
	local out=$TMP/$name
	if [ "$have_hyperfine" = 1 ]; then
		hyperfine -N --style basic --warmup "$WARMUP" --runs "$N" \
			--export-json "$out.json" "$cmd" >"$out.hf.log" 2>&1 || {
			cat "$out.hf.log" >&2
			return 1
		}
		# median is in seconds
		local med
		if command -v jq >/dev/null 2>&1; then
			med=$(jq -r '.results[0].median' "$out.json")
		else
			med=$(grep -o '"median": *[0-9.eE+-]*' "$out.json" | head -1 | sed 's/.*: *//')
		fi
		awk -v s="$med" 'BEGIN { printf "%.2f\n", s * 1000 }' >"$out.median"
	else
		local i t0 t1
		for ((i = 0; i < WARMUP; i++)); do bash -c "$cmd" >/dev/null 2>&1 || return 1; done
		: >"$out.times"
		for ((i = 0; i < N; i++)); do
			t0=$(date +%s%N)
			bash -c "$cmd" >/dev/null 2>&1 || {
				echo "$name: run $i failed: $cmd" >&2
				return 1
			}
			t1=$(date +%s%N)
			echo $(((t1 - t0) / 1000)) >>"$out.times" # microseconds
		done
		sort -n "$out.times" | awk '{ a[NR] = $1 } END {
			m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			printf "%.2f\n", m / 1000 }' >"$out.median"
	fi
	printf '  %-8s median %8s ms  (%s runs)\n' "$name" "$(cat "$out.median")" "$N"
}

echo "== timing (N=$N, warmup=$WARMUP, $([ $have_hyperfine = 1 ] && echo hyperfine || echo 'shell loop with date +%s%N'))"
echo "   note: crun 1.8 (Debian 12) refuses this machine's cgroup v1 hybrid"
echo "   setup, so runc is the practical baseline here."

measure berth "$BERTH run --rm --network none busybox true"
# `runc run` (without --detach) deletes the container when it exits, so the
# same ID can be used for every run.
measure runc "runc --root $RUNC_ROOT run --bundle $BUNDLE berth-bench-runc"

if command -v crun >/dev/null 2>&1; then
	if crun_err=$(crun --root "$CRUN_ROOT" run --bundle "$BUNDLE" crun-probe 2>&1 >/dev/null); then
		measure crun "crun --root $CRUN_ROOT run --bundle $BUNDLE berth-bench-crun"
	else
		echo "  crun     skipped: crun cannot run containers here: ${crun_err:-unknown error}"
	fi
else
	echo "  crun     skipped: not installed"
fi

if command -v podman >/dev/null 2>&1; then
	if podman import "$TMP/busybox.tar" berth-bench-busybox >/dev/null 2>&1; then
		PODMAN_IMPORTED=1
		# crun refuses cgroup v1 hybrid hosts; podman then needs runc. --ulimit:
		# podman raises nofile/nproc past what this host allows. --pull=never
		# keeps podman off the network whatever its short-name settings say.
		podman_runtime=""
		[ -n "${crun_err:-}" ] || ! command -v crun >/dev/null 2>&1 && podman_runtime="--runtime runc"
		measure podman "podman $podman_runtime run --rm --pull=never --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none localhost/berth-bench-busybox true" ||
			echo "  podman   failed"
	else
		echo "  podman   skipped: podman import failed"
	fi
else
	echo "  podman   skipped: not installed"
fi

echo "== ratios (median / median; lower than 1 means berth is faster)"
b=$(cat "$TMP/berth.median")
for other in runc crun podman; do
	f=$TMP/$other.median
	[ -s "$f" ] || continue
	awk -v b="$b" -v o="$(cat "$f")" -v n="$other" \
		'BEGIN { printf "  berth/%-7s %.2fx  (%.2f ms vs %.2f ms)\n", n, b / o, b, o }'
done
