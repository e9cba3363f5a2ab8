#!/usr/bin/env bash
# bench/rootless.sh — start-to-exit of a short-lived rootless container:
#   berth  run --rm --pull=never --network none busybox true
#   berth-slirp  run --rm --pull=never busybox true      (the rootless default
#                                                        network, slirp4netns;
#                                                        if installed)
#   berth-bridge run --rm --pull=never --network bridge --dns 127.0.0.1
#                busybox true                            (a bridge in the user's
#                                                        rootless network
#                                                        namespace)
#   podman --runtime runc --cgroup-manager cgroupfs run --rm --pull=never
#          --network none localhost/… true               (if installed)
#   podman-slirp  the same with --network slirp4netns
# then the throughput of SIZE MB (default 500) written by the host to
# 127.0.0.1:PORT of a container's -p 127.0.0.1::5000 (busybox nc into
# /dev/null), ROUNDS (default 3) times, median: berth on slirp4netns and
# on a bridge, podman on slirp4netns.
# run as an ordinary user with subordinate ids, N rounds (default 30), the
# two taking turns, medians in ms. Run as root: it uses (and creates if
# missing) the user berthtest with /etc/subuid and /etc/subgid ranges, as
# the e2e harness does, and a fresh HOME/XDG tree under a temp dir.
# crun 1.8 refuses this cgroup v1 hybrid host, so podman goes through runc;
# rootless podman on cgroup v1 uses no cgroups, like berth.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-${N:-30}}
SIZE=${SIZE:-500}
ROUNDS=${ROUNDS:-3}
USER_NAME=${BENCH_USER:-berthtest}
BERTH=${BERTH:-bin/berth}
[ -x "$BERTH" ] || go build -tags exclude_graphdriver_btrfs -o "$BERTH" .
BERTH=$(readlink -f "$BERTH")
if [ "$(id -u)" != 0 ]; then
	echo "bench: run as root (it switches to $USER_NAME)" >&2
	exit 1
fi
if ! id "$USER_NAME" >/dev/null 2>&1; then
	useradd -M -s /bin/sh "$USER_NAME"
fi
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:300000:65536" >>/etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:300000:65536" >>/etc/subgid
TMP=$(mktemp -d /tmp/berth-rlbench.XXXXXX)
chmod 755 "$TMP"
H=$TMP/home
mkdir -p "$H/run"
chmod 700 "$H/run"
chown -R "$USER_NAME" "$H"
sh testdata/mkbusybox.sh "$H/busybox.tar" >/dev/null 2>&1
chown "$USER_NAME" "$H/busybox.tar"
as_user() {
	runuser -u "$USER_NAME" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$H" \
		XDG_RUNTIME_DIR="$H/run" XDG_DATA_HOME="$H/data" XDG_CONFIG_HOME="$H/config" \
		BERTH_REGISTRY_LOOPBACK_ONLY=1 "$@"
}
cleanup() {
	set +e
	if [ -n "${PODMAN:-}" ]; then
		as_user podman rmi -f localhost/berth-rlbench >/dev/null 2>&1
		as_user podman system reset -f >/dev/null 2>&1
	fi
	# The store's files belong to subordinate ids: removed from inside the
	# user namespace; then this bench's own pause process goes.
	as_user "$BERTH" unshare rm -rf "$H/data/berth" 2>/dev/null
	# (its rootless network namespace's keeper and slirp4netns end with it)
	[ -f "$H/run/berth/pause.pid" ] && kill "$(cat "$H/run/berth/pause.pid")" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
cd "$H"
as_user "$BERTH" import "$H/busybox.tar" busybox >/dev/null
names=(berth) cmds=("$BERTH run --rm --pull=never --network none busybox true")
if command -v slirp4netns >/dev/null 2>&1; then
	# slirp4netns opens /dev/net/tun as the user: the standard mode (udev's).
	[ -c /dev/net/tun ] && chmod 0666 /dev/net/tun
	names+=(berth-slirp berth-bridge)
	cmds+=("$BERTH run --rm --pull=never busybox true"
		"$BERTH run --rm --pull=never --network bridge --dns 127.0.0.1 busybox true")
fi
if command -v podman >/dev/null 2>&1 && as_user podman import "$H/busybox.tar" localhost/berth-rlbench >/dev/null 2>&1; then
	PODMAN=1
	names+=(podman)
	cmds+=("podman --runtime runc --cgroup-manager cgroupfs run --rm --pull=never --network none localhost/berth-rlbench true")
	if command -v slirp4netns >/dev/null 2>&1; then
		names+=(podman-slirp)
		cmds+=("podman --runtime runc --cgroup-manager cgroupfs run --rm --pull=never --network slirp4netns --dns 127.0.0.1 localhost/berth-rlbench true")
	fi
else
	echo "podman: not installed (or rootless import failed); berth only"
fi
for k in "${!names[@]}"; do
	for i in 1 2 3; do as_user ${cmds[$k]} >/dev/null; done
	: >"$TMP/${names[$k]}.times"
done
for ((i = 0; i < N; i++)); do
	for k in "${!names[@]}"; do
		s=${EPOCHREALTIME/./}
		as_user ${cmds[$k]} >/dev/null </dev/null
		e=${EPOCHREALTIME/./}
		echo $((e - s)) >>"$TMP/${names[$k]}.times"
	done
done
echo "== rootless run --rm true as $USER_NAME, $N rounds, interleaved, medians (runuser included):"
for name in "${names[@]}"; do
	printf '  %-13s %7s ms\n' "$name" "$(median "$TMP/$name.times")"
done
if [ -n "${PODMAN:-}" ]; then
	awk -v b="$(median "$TMP/berth.times")" -v p="$(median "$TMP/podman.times")" \
		'BEGIN { printf "  berth / podman: %.2fx\n", b / p }'
fi

# --- throughput host -> container through -p 127.0.0.1::5000 (bench/lib.sh)
if command -v slirp4netns >/dev/null 2>&1; then
	echo "== host -> rootless container through -p 127.0.0.1, ${SIZE} MB, median of $ROUNDS:"
	for net in slirp4netns bridge; do
		as_user "$BERTH" run -d --pull=never --name rl-sink --network $net --dns 127.0.0.1 -p 127.0.0.1::5000 busybox sh -c "$sink" >/dev/null
		port=$(as_user "$BERTH" port rl-sink 5000 | awk -F: '{print $2}')
		throughput "berth $net (berth's proxy)" 127.0.0.1 "$port"
		as_user "$BERTH" rm -f rl-sink >/dev/null
	done
	if [ -n "${PODMAN:-}" ]; then
		as_user podman --runtime runc --cgroup-manager cgroupfs run -d --pull=never --name rl-sink --network slirp4netns --dns 127.0.0.1 \
			-p 127.0.0.1:15010:5000 localhost/berth-rlbench sh -c "$sink" >/dev/null
		throughput "podman slirp4netns (rootlessport)" 127.0.0.1 15010
		as_user podman rm -f -t 0 rl-sink >/dev/null
	fi
fi
