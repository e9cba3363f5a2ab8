#!/usr/bin/env bash
# bench/network.sh — the default bridge network, two ways:
#
# 1. Start-to-exit of a short-lived container, N rounds (default 30), the
#    engines taking turns one run each, medians in ms:
#      berth run --rm --network none busybox true
#      berth run --rm busybox true                      (default bridge)
#      podman run --rm … true                           (its default network,
#                                                        netavark; if installed)
# 2. Throughput host → container through a published port: a container runs
#    busybox `nc -l` into /dev/null, the host writes SIZE MB (default 1000)
#    of zeros to it with bash's /dev/tcp; ROUNDS (default 3) per path,
#    median MB/s. Paths: 127.0.0.1:PORT (berth: its userland proxy) and the
#    bridge's gateway address:PORT (DNAT, kernel only), for berth and podman.
#
#   bash bench/network.sh [N]        (env: SIZE, ROUNDS, BERTH)
#
# A fresh store in a temp dir, its run root on a tmpfs (as /run is on a
# standard system). Its bridge, nftables table and store are removed at the
# end. Needs root and busybox-static. No packet leaves the machine: the
# containers run `true` or listen; the only peers are 127.0.0.1 and the
# bridges' own gateway addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-${N:-30}}
SIZE=${SIZE:-1000}
ROUNDS=${ROUNDS:-3}
BERTH=${BERTH:-bin/berth}
[ -x "$BERTH" ] || go build -tags exclude_graphdriver_btrfs -o "$BERTH" .
BERTH=$(readlink -f "$BERTH")
TMP=$(mktemp -d /tmp/berth-netbench.XXXXXX)
export BERTH_ROOT=$TMP/root BERTH_RUNROOT=$TMP/run BERTH_REGISTRY_LOOPBACK_ONLY=1
mkdir -p "$BERTH_RUNROOT"
mount -t tmpfs tmpfs "$BERTH_RUNROOT"
PODMAN=""
cleanup() {
	set +e
	"$BERTH" rm -f bench-sink >/dev/null 2>&1
	if [ -n "$PODMAN" ]; then
		podman rm -f -t 0 berth-bench-sink >/dev/null 2>&1
		podman rmi -f localhost/berth-netbench >/dev/null 2>&1
	fi
	br=$("$BERTH" network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' bridge 2>/dev/null)
	[ -n "$br" ] && ip link del "$br" 2>/dev/null && nft delete table ip "$br" 2>/dev/null
	grep -o " $TMP[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
sh testdata/mkbusybox.sh "$TMP/busybox.tar" >/dev/null 2>&1
"$BERTH" import "$TMP/busybox.tar" busybox >/dev/null

# podman through runc (crun 1.8 refuses this cgroup v1 host), limits this
# host allows, never a registry lookup.
if command -v podman >/dev/null 2>&1 && podman import "$TMP/busybox.tar" localhost/berth-netbench >/dev/null 2>&1; then
	PODMAN="podman --runtime runc"
	PODMAN_RUN="$PODMAN run --pull=never --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
else
	echo "podman: not installed (or import failed); berth only"
fi

names=(none bridge) cmds=("$BERTH run --rm --pull=never --network none busybox true"
	"$BERTH run --rm --pull=never busybox true")
if [ -n "$PODMAN" ]; then
	names+=(podman)
	cmds+=("$PODMAN_RUN --rm localhost/berth-netbench true")
fi
for k in "${!names[@]}"; do
	for i in 1 2 3; do ${cmds[$k]} >/dev/null; done
	: >"$TMP/${names[$k]}.times"
done
for ((i = 0; i < N; i++)); do
	for k in "${!names[@]}"; do
		s=${EPOCHREALTIME/./}
		${cmds[$k]} >/dev/null </dev/null
		e=${EPOCHREALTIME/./}
		echo $((e - s)) >>"$TMP/${names[$k]}.times"
	done
done
echo "== run --rm true, $N rounds, interleaved, medians:"
printf '  berth --network none   %7s ms\n' "$(median "$TMP/none.times")"
printf '  berth default bridge   %7s ms\n' "$(median "$TMP/bridge.times")"
if [ -n "$PODMAN" ]; then
	printf '  podman default network %7s ms\n' "$(median "$TMP/podman.times")"
	awk -v b="$(median "$TMP/bridge.times")" -v p="$(median "$TMP/podman.times")" \
		'BEGIN { printf "  berth bridge / podman: %.2fx\n", b / p }'
fi

# --- throughput through a published port (send, throughput: bench/lib.sh)
echo "== host -> container through -p, ${SIZE} MB, median of $ROUNDS:"
"$BERTH" run -d --name bench-sink -p 127.0.0.1::5000 -p 5000 busybox sh -c "$sink" >/dev/null
lo=$("$BERTH" port bench-sink 5000 | awk -F: '/^127.0.0.1:/ {print $2}')
any=$("$BERTH" port bench-sink 5000 | awk -F: '/^0.0.0.0:/ {print $2}')
gw=$("$BERTH" inspect -f '{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}' bench-sink)
throughput "berth 127.0.0.1 (proxy)" 127.0.0.1 "$lo"
throughput "berth gateway $gw (DNAT)" "$gw" "$any"
"$BERTH" rm -f bench-sink >/dev/null
if [ -n "$PODMAN" ]; then
	$PODMAN_RUN -d --name berth-bench-sink -p 127.0.0.1:15000:5000 -p 15001:5000 localhost/berth-netbench sh -c "$sink" >/dev/null
	pgw=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}' berth-bench-sink)
	throughput "podman 127.0.0.1" 127.0.0.1 15000
	throughput "podman gateway $pgw" "$pgw" 15001
	podman rm -f -t 0 berth-bench-sink >/dev/null
fi
