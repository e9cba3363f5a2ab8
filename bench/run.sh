#!/usr/bin/env bash
# bench/run.sh — container start-to-exit latency of `berth run --rm`
# compared with plain OCI runtimes on the same busybox rootfs.
#
#   bash bench/run.sh [N]          N runs per engine (default 50; env N too)
#
# Environment:
#   BERTH=path/to/berth   binary to measure (default bin/berth; built if missing)
#   WARMUP=3              untimed runs before each series
#
# What is measured (each from a shell, wall clock, one run at a time):
#   berth   berth run --rm --network none busybox true      (fresh store in a temp dir)
#   runc    runc run on an OCI bundle: busybox rootfs + `runc spec`, args ["true"],
#           terminal false, new pid/net/ipc/uts/mount namespaces ("network none")
#   crun    same bundle, if crun is installed and works here
#   podman  podman run --rm --network none <busybox imported> true, if installed
#
# Then the same for exec into a running container (`sleep` as its command):
#   berth   berth exec CTR true
#   runc    runc exec CTR true, on a `runc run -d` of the bundle (args sleep)
#   podman  podman exec CTR true, if installed (through runc as above)
#
# Needs root, runc, busybox-static. Prints medians (ms) and ratios.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-${N:-50}}
[ "$N" = registry ] && N=${N_RUNS:-50}
[ "$N" = build ] && N=${N_RUNS:-50}
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
	[ -n "${REGISTRY_PID:-}" ] && kill "$REGISTRY_PID" 2>/dev/null
	if [ -n "${BERTH_ROOT:-}" ]; then
		for id in $("$BERTH" ps -aq 2>/dev/null); do "$BERTH" rm -f "$id" >/dev/null 2>&1; done
	fi
	if [ -n "${RUNC_EXEC_STARTED:-}" ]; then
		runc --root "$RUNC_ROOT" delete -f berth-bench-exec >/dev/null 2>&1
	fi
	if command -v podman >/dev/null 2>&1 && [ -n "${PODMAN_IMPORTED:-}" ]; then
		podman rm -f -t 0 berth-bench-exec >/dev/null 2>&1
		podman rmi -f berth-bench-busybox >/dev/null 2>&1
	fi
	# Anything still mounted under the temp dir (the store's overlay home
	# if berth left it), deepest first.
	grep -o " $TMP[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# push and pull against a local docker-registry (127.0.0.1 only): an image
# of three 30 MB layers of random data (incompressible: gzip works hard),
# berth vs podman vs skopeo. Each operation starts from an empty registry
# and an empty destination store; R rounds (default 3), medians.
# `bash bench/run.sh registry` runs only this part.
registry_bench() {
	local R=${R:-3} MB=${LAYER_MB:-30}
	export BERTH_REGISTRY_LOOPBACK_ONLY=1 # berth refuses any non-loopback registry
	if ! command -v docker-registry >/dev/null; then
		echo "== push/pull skipped: docker-registry is not installed"
		return
	fi
	echo "== push/pull: 3 layers x ${MB} MB random, local docker-registry, $R rounds, medians"
	local d=$TMP/reg port
	mkdir -p "$d/img"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n  secret: bench\n' \
		"$d/data" "$port" >"$d/config.yml"
	docker-registry serve "$d/config.yml" >"$d/registry.log" 2>&1 &
	REGISTRY_PID=$!
	local reg=127.0.0.1:$port
	for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

	# A docker-archive with three layers, loaded into each engine's store.
	local diffs="" layers="" i
	for i in 1 2 3; do
		mkdir -p "$d/l$i"
		head -c $((MB << 20)) /dev/urandom >"$d/l$i/data$i"
		tar -C "$d/l$i" -cf "$d/img/layer$i.tar" "data$i"
		diffs="$diffs${diffs:+,}\"sha256:$(sha256sum "$d/img/layer$i.tar" | cut -d' ' -f1)\""
		layers="$layers${layers:+,}\"layer$i.tar\""
	done
	printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" >"$d/img/config.json"
	printf '[{"Config":"config.json","RepoTags":["bench/img:1"],"Layers":[%s]}]' "$layers" >"$d/img/manifest.json"
	tar -C "$d/img" -cf "$d/image.tar" .
	local total=$((3 * MB))

	local src_root=$d/berth-src pod="podman --root $d/podman-src --runroot $d/podman-src-run --storage-driver overlay"
	"$BERTH" --root "$src_root" --runroot "$src_root-run" load -i "$d/image.tar" >/dev/null
	local engines=(berth)
	if command -v podman >/dev/null && $pod load -i "$d/image.tar" >/dev/null 2>&1; then engines+=(podman); fi
	if command -v skopeo >/dev/null; then engines+=(skopeo); fi

	local op e r t0 t1 dst
	for op in push pull; do
		for e in "${engines[@]}"; do : >"$d/$op-$e.times"; done
	done
	for ((r = 0; r < R; r++)); do
		for e in "${engines[@]}"; do
			# push: empty registry first.
			rm -rf "$d/data"
			t0=${EPOCHREALTIME/./}
			case $e in
			berth) "$BERTH" --root "$src_root" --runroot "$src_root-run" push -q bench/img:1 "$reg/bench/img:1" >/dev/null ;;
			podman) $pod push -q --tls-verify=false localhost/bench/img:1 "$reg/bench/img:1" >/dev/null 2>&1 ;;
			skopeo) skopeo copy -q --dest-tls-verify=false "docker-archive:$d/image.tar" "docker://$reg/bench/img:1" >/dev/null ;;
			esac
			t1=${EPOCHREALTIME/./}
			echo $((t1 - t0)) >>"$d/push-$e.times"
			# pull what was just pushed into an empty store.
			dst=$d/dst-$e-$r
			t0=${EPOCHREALTIME/./}
			case $e in
			berth) "$BERTH" --root "$dst" --runroot "$dst-run" pull -q "$reg/bench/img:1" >/dev/null ;;
			podman) podman --root "$dst" --runroot "$dst-run" --storage-driver overlay pull -q --tls-verify=false "$reg/bench/img:1" >/dev/null 2>&1 ;;
			skopeo) skopeo copy -q --src-tls-verify=false "docker://$reg/bench/img:1" "containers-storage:[overlay@$dst+$dst-run]bench/img:1" >/dev/null ;;
			esac
			t1=${EPOCHREALTIME/./}
			echo $((t1 - t0)) >>"$d/pull-$e.times"
			case $e in
			berth) "$BERTH" --root "$dst" --runroot "$dst-run" rmi -f "$reg/bench/img:1" >/dev/null 2>&1 || true ;;
			podman) podman --root "$dst" --runroot "$dst-run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true ;;
			esac
			{ grep -o " $dst[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
			rm -rf "$dst" "$dst-run"
		done
	done
	kill "$REGISTRY_PID" 2>/dev/null || true
	wait "$REGISTRY_PID" 2>/dev/null || true
	REGISTRY_PID=
	for op in push pull; do
		for e in "${engines[@]}"; do
			sort -n "$d/$op-$e.times" | awk -v e="$e" -v op="$op" -v mb="$total" '{ a[NR] = $1 } END {
				m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
				printf "  %-6s %s %8.2f s  %7.1f MB/s\n", e, op, m / 1e6, mb / (m / 1e6) }' | tee "$d/$op-$e.line"
			awk '{print $3}' "$d/$op-$e.line" >"$d/$op-$e.median"
		done
		for e in podman skopeo; do
			[ -s "$d/$op-$e.median" ] || continue
			awk -v b="$(cat "$d/$op-berth.median")" -v o="$(cat "$d/$op-$e.median")" -v e="$e" -v op="$op" \
				'BEGIN { printf "  %s berth/%-7s %.2fx  (%.2f s vs %.2f s)\n", op, e, b / o, b, o }'
		done
	done
}
# build_bench: a 10-step Dockerfile (a COPY of a 50 MB directory and 8 RUN
# steps) built cold (--no-cache), fully cached, and with its last RUN step
# changed, by berth and (when installed) podman, each in a store of its
# own. RUN steps have no network. Medians of ROUNDS (default 3) rounds.
build_bench() {
	local d=$TMP/build-bench rounds=${ROUNDS:-3}
	mkdir -p "$d/ctx/data"
	for i in $(seq 50); do head -c 1048576 /dev/urandom >"$d/ctx/data/f$i"; done
	sh testdata/mkbusybox.sh "$d/busybox.tar" 2>/dev/null
	local br=(env BERTH_ROOT="$d/broot" BERTH_RUNROOT="$d/brun" "$BERTH")
	"${br[@]}" import "$d/busybox.tar" localhost/bench-base >/dev/null
	local engines=(berth)
	local pm=()
	if command -v podman >/dev/null 2>&1; then
		pm=(podman --root "$d/proot" --runroot "$d/prun")
		"${pm[@]}" import "$d/busybox.tar" localhost/bench-base >/dev/null 2>&1 && engines+=(podman)
	fi
	write_dockerfile() { # $1: the last RUN step's word
		{
			echo "FROM localhost/bench-base"
			echo "COPY data /data"
			for i in 1 2 3 4 5 6 7; do echo "RUN echo $i > /step$i"; done
			echo "RUN echo $1 > /last"
		} >"$d/ctx/Dockerfile"
	}
	build_with() { # $1 engine, $2..: extra flags
		local e=$1
		shift
		case $e in
		berth) "${br[@]}" build -q "$@" -t bench "$d/ctx" ;;
		podman) "${pm[@]}" build --runtime runc --network none --pull=never -q \
			--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$@" -t bench "$d/ctx" ;;
		esac >/dev/null 2>&1
	}
	timed() { local t0=${EPOCHREALTIME/./}; "$@" || return 1; echo $(((${EPOCHREALTIME/./} - t0) / 1000)); }
	echo "== build: 10 steps (COPY of 50 MB, 8 RUN), $rounds rounds, engines taking turns"
	for ((r = 0; r < rounds; r++)); do
		for e in "${engines[@]}"; do
			write_dockerfile "round$r"
			timed build_with "$e" --no-cache >>"$d/cold-$e.ms" || { echo "  $e build failed" >&2; return 1; }
			timed build_with "$e" >>"$d/cached-$e.ms"
			write_dockerfile "changed$r"
			timed build_with "$e" >>"$d/onestep-$e.ms"
		done
	done
	for kind in cold cached onestep; do
		for e in "${engines[@]}"; do
			sort -n "$d/$kind-$e.ms" | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m }' >"$d/$kind-$e.median"
			printf '  %-8s %-7s median %6s ms\n' "$kind" "$e" "$(cat "$d/$kind-$e.median")"
		done
		[ -s "$d/$kind-podman.median" ] && awk -v b="$(cat "$d/$kind-berth.median")" -v o="$(cat "$d/$kind-podman.median")" -v k="$kind" \
			'BEGIN { printf "  %-8s berth/podman %.2fx\n", k, b / o }'
	done
	"${pm[@]:-true}" rmi -af >/dev/null 2>&1 || true
}
if [ "${1:-}" = registry ]; then
	registry_bench
	exit 0
fi
if [ "${1:-}" = build ]; then
	build_bench
	exit 0
fi

echo "== preparing busybox image and OCI bundle in $TMP"
sh testdata/mkbusybox.sh "$TMP/busybox.tar" 2>/dev/null
export BERTH_ROOT=$TMP/root BERTH_RUNROOT=$TMP/run
# Runtime state lives on a tmpfs, as /run is on a standard Debian system
# (this machine has no systemd, so its /run is a plain directory). runc's
# and crun's state directories go there too.
mkdir -p "$BERTH_RUNROOT"
if [ "$(stat -f -c %T "$BERTH_RUNROOT")" != tmpfs ]; then
	mount -t tmpfs -o size=64m,mode=0700 berth-bench-run "$BERTH_RUNROOT"
fi
RUNC_ROOT=$BERTH_RUNROOT/runc-state
CRUN_ROOT=$BERTH_RUNROOT/crun-state
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
# Which engines run here, and their commands.
names=(berth runc)
cmds=("$BERTH run --rm --network none busybox true"
	# `runc run` (without --detach) deletes the container when it exits, so the
	# same ID can be used for every run.
	"runc --root $RUNC_ROOT run --bundle $BUNDLE berth-bench-runc")

if command -v crun >/dev/null 2>&1; then
	crun_err=""
	if crun_err=$(crun --root "$CRUN_ROOT" run --bundle "$BUNDLE" crun-probe 2>&1 >/dev/null); then
		names+=(crun)
		cmds+=("crun --root $CRUN_ROOT run --bundle $BUNDLE berth-bench-crun")
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
		if [ -n "${crun_err:-}" ] || ! command -v crun >/dev/null 2>&1; then
			podman_runtime="--runtime runc"
		fi
		names+=(podman)
		cmds+=("podman $podman_runtime run --rm --pull=never --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none localhost/berth-bench-busybox true")
	else
		echo "  podman   skipped: podman import failed"
	fi
else
	echo "  podman   skipped: not installed"
fi

# The engines take turns, one run each per round, so that a slow minute of
# a shared machine weighs on all of them alike (timing them one after the
# other lets drift pass for a difference). Times come from bash's
# EPOCHREALTIME: no process is started to read the clock.
echo "== timing (N=$N rounds, warmup=$WARMUP, interleaved)"
echo "   note: crun 1.8 (Debian 12) refuses this machine's cgroup v1 hybrid"
echo "   setup, so runc is the practical baseline here."
for k in "${!names[@]}"; do : >"$TMP/${names[$k]}.times"; done
for ((i = -WARMUP; i < N; i++)); do
	for k in "${!names[@]}"; do
		t0=${EPOCHREALTIME/./}
		if ! bash -c "${cmds[$k]}" >/dev/null 2>&1 </dev/null; then
			echo "${names[$k]}: run failed: ${cmds[$k]}" >&2
			exit 1
		fi
		t1=${EPOCHREALTIME/./}
		((i < 0)) || echo $((t1 - t0)) >>"$TMP/${names[$k]}.times"
	done
done
for name in "${names[@]}"; do
	sort -n "$TMP/$name.times" | awk '{ a[NR] = $1 } END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%.2f\n", m / 1000 }' >"$TMP/$name.median"
	printf '  %-8s median %8s ms  (%s runs)\n' "$name" "$(cat "$TMP/$name.median")" "$N"
done

echo "== ratios (median / median; lower than 1 means berth is faster)"
b=$(cat "$TMP/berth.median")
for other in runc crun podman; do
	f=$TMP/$other.median
	[ -s "$f" ] || continue
	awk -v b="$b" -v o="$(cat "$f")" -v n="$other" \
		'BEGIN { printf "  berth/%-7s %.2fx  (%.2f ms vs %.2f ms)\n", n, b / o, b, o }'
done

# ---------------------------------------------------------------------------
# exec into a running container: one long-running container per engine,
# `exec CTR true` timed the same way (interleaved, medians).
echo "== exec timing (N=$N rounds, warmup=$WARMUP, interleaved)"
"$BERTH" run -d --name bench-exec --network none busybox sleep 1000000 >/dev/null
EXEC_BUNDLE=$TMP/exec-bundle
mkdir -p "$EXEC_BUNDLE"
sed -e '/"args": \[/,/\]/ s/"true"/"sleep", "1000000"/' \
	-e "s|\"path\": \"rootfs\"|\"path\": \"$BUNDLE/rootfs\"|" \
	"$BUNDLE/config.json" >"$EXEC_BUNDLE/config.json"
grep -q '"1000000"' "$EXEC_BUNDLE/config.json"
runc --root "$RUNC_ROOT" run -d --bundle "$EXEC_BUNDLE" berth-bench-exec </dev/null >/dev/null 2>&1
RUNC_EXEC_STARTED=1
enames=(berth runc)
ecmds=("$BERTH exec bench-exec true"
	"runc --root $RUNC_ROOT exec berth-bench-exec true")
if [ -n "${PODMAN_IMPORTED:-}" ]; then
	if podman $podman_runtime run -d --name berth-bench-exec --pull=never --ulimit nofile=1024:1024 \
		--ulimit nproc=1024:1024 --network none localhost/berth-bench-busybox sleep 1000000 >/dev/null 2>&1; then
		enames+=(podman)
		ecmds+=("podman $podman_runtime exec berth-bench-exec true")
	else
		echo "  podman   exec skipped: podman run -d failed"
	fi
fi
for k in "${!enames[@]}"; do : >"$TMP/exec-${enames[$k]}.times"; done
for ((i = -WARMUP; i < N; i++)); do
	for k in "${!enames[@]}"; do
		t0=${EPOCHREALTIME/./}
		if ! bash -c "${ecmds[$k]}" >/dev/null 2>&1 </dev/null; then
			echo "${enames[$k]}: exec failed: ${ecmds[$k]}" >&2
			exit 1
		fi
		t1=${EPOCHREALTIME/./}
		((i < 0)) || echo $((t1 - t0)) >>"$TMP/exec-${enames[$k]}.times"
	done
done
for name in "${enames[@]}"; do
	sort -n "$TMP/exec-$name.times" | awk '{ a[NR] = $1 } END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%.2f\n", m / 1000 }' >"$TMP/exec-$name.median"
	printf '  %-8s exec median %8s ms  (%s runs)\n' "$name" "$(cat "$TMP/exec-$name.median")" "$N"
done
b=$(cat "$TMP/exec-berth.median")
for other in runc podman; do
	f=$TMP/exec-$other.median
	[ -s "$f" ] || continue
	awk -v b="$b" -v o="$(cat "$f")" -v n="$other" \
		'BEGIN { printf "  exec berth/%-7s %.2fx  (%.2f ms vs %.2f ms)\n", n, b / o, b, o }'
done

registry_bench
