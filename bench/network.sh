#!/usr/bin/env bash
# bench/network.sh — what the default bridge network costs a short-lived
# container: `berth run --rm busybox true` on the default bridge against
# the same with --network none, N rounds (default 30), the two taking
# turns one run each, medians in ms.
#
#   bash bench/network.sh [N]
#
# A fresh store in a temp dir, its run root on a tmpfs (as /run is on a
# standard system). Its bridge, nftables table and store are removed at the
# end. Needs root and busybox-static. No packet leaves the machine: the
# containers run `true`.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-${N:-30}}
BERTH=${BERTH:-bin/berth}
[ -x "$BERTH" ] || go build -tags exclude_graphdriver_btrfs -o "$BERTH" .
BERTH=$(readlink -f "$BERTH")
TMP=$(mktemp -d /tmp/berth-netbench.XXXXXX)
export BERTH_ROOT=$TMP/root BERTH_RUNROOT=$TMP/run BERTH_REGISTRY_LOOPBACK_ONLY=1
mkdir -p "$BERTH_RUNROOT"
mount -t tmpfs tmpfs "$BERTH_RUNROOT"
cleanup() {
	set +e
	br=$("$BERTH" network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' bridge 2>/dev/null)
	[ -n "$br" ] && ip link del "$br" 2>/dev/null && nft delete table ip "$br" 2>/dev/null
	grep -o " $TMP[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
sh testdata/mkbusybox.sh "$TMP/busybox.tar" >/dev/null 2>&1
"$BERTH" import "$TMP/busybox.tar" busybox >/dev/null
for i in 1 2 3; do
	"$BERTH" run --rm --pull=never busybox true
	"$BERTH" run --rm --pull=never --network none busybox true
done
none=() bridge=()
ms() { echo "($2 - $1) * 1000" | bc; }
for i in $(seq "$N"); do
	s=$EPOCHREALTIME; "$BERTH" run --rm --pull=never --network none busybox true; e=$EPOCHREALTIME
	none+=("$(ms "$s" "$e")")
	s=$EPOCHREALTIME; "$BERTH" run --rm --pull=never busybox true; e=$EPOCHREALTIME
	bridge+=("$(ms "$s" "$e")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}'; }
mn=$(median "${none[@]}") mb=$(median "${bridge[@]}")
echo "berth run --rm busybox true, $N rounds, medians:"
echo "  --network none   ${mn} ms"
echo "  default bridge   ${mb} ms   (+$(echo "$mb - $mn" | bc) ms)"
