# bench/lib.sh — shared by the bench scripts (sourced). Needs $TMP, and
# for the throughput functions $SIZE (MB) and $ROUNDS.

# median FILE: the median of microsecond figures, in ms.
median() { sort -n "$1" | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'; }

# A container command that swallows one connection after another.
sink='while true; do nc -l -p 5000 >/dev/null; done'

# send ADDR PORT: MB/s of one SIZE MB transfer (waits for the listener).
send() {
	local i s e
	for i in $(seq 50); do
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && break
		sleep 0.1
	done
	sleep 0.2 # the probe connection above used up one nc
	s=${EPOCHREALTIME/./}
	head -c "${SIZE}M" /dev/zero >"/dev/tcp/$1/$2"
	e=${EPOCHREALTIME/./}
	awk -v mb="$SIZE" -v us=$((e - s)) 'BEGIN { printf "%.0f\n", mb / (us / 1e6) }'
}

# throughput LABEL ADDR PORT: the median MB/s of ROUNDS transfers.
throughput() {
	local r
	: >"$TMP/tp"
	for r in $(seq "$ROUNDS"); do
		send "$2" "$3" >>"$TMP/tp"
		sleep 0.2
	done
	printf '  %-34s %6s MB/s\n' "$1" "$(sort -n "$TMP/tp" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}
