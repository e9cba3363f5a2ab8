#!/bin/sh
# mkbusybox.sh OUT.tar
#
# Builds a minimal busybox root filesystem from the host's static busybox
# (Debian: apt-get install busybox-static) and writes it as a plain tarball
# suitable for `berth import OUT.tar busybox`.
#
# Layout:
#   /bin/busybox                 the binary
#   /{bin,sbin,usr/bin,usr/sbin}/APPLET -> busybox (relative symlinks, from
#                                `busybox --list-full`)
#   /etc/passwd, /etc/group      root, daemon, berthuser (1000:1000, also in
#                                group staff 50), nobody (65534)
#   /tmp (1777), /root (0700), /home/berthuser (0755, owned 1000:1000)
#   /dev /proc /sys /run /var/tmp (empty)
#   no /etc/hostname, /etc/hosts or /etc/resolv.conf (the engine provides them)
#
# The tarball is deterministic: entries sorted by name, fixed mtime, numeric
# owners (0:0 everywhere except /home/berthuser, which is 1000:1000). It does
# not need root: ownership is set by tar, not by chown.
#
# Environment: BUSYBOX=/path/to/static/busybox (default /bin/busybox).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUT.tar" >&2
	exit 2
fi
out=$1
busybox=${BUSYBOX:-/bin/busybox}

if [ ! -x "$busybox" ]; then
	echo "mkbusybox: $busybox not found (apt-get install busybox-static)" >&2
	exit 1
fi
# A dynamically linked busybox would not run inside the image.
if command -v file >/dev/null 2>&1 && file -L "$busybox" | grep -q 'dynamically linked'; then
	echo "mkbusybox: $busybox is dynamically linked; need busybox-static" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkbusybox.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
r=$tmp/rootfs
umask 022
mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/etc" \
	"$r/dev" "$r/proc" "$r/sys" "$r/run" "$r/var/tmp" \
	"$r/root" "$r/tmp" "$r/home/berthuser"
chmod 1777 "$r/tmp" "$r/var/tmp"
chmod 0700 "$r/root"

cp "$busybox" "$r/bin/busybox"
chmod 0755 "$r/bin/busybox"

# One relative symlink per applet, in the directory busybox says it lives in.
"$busybox" --list-full | sort | while read -r path; do
	case $path in
	*/*) ;;
	*) continue ;; # e.g. "linuxrc": not wanted at /
	esac
	dir=${path%/*}
	name=${path##*/}
	case $dir in
	bin) target=busybox ;;
	sbin) target=../bin/busybox ;;
	usr/bin | usr/sbin) target=../../bin/busybox ;;
	*) continue ;;
	esac
	[ "$path" = bin/busybox ] && continue
	mkdir -p "$r/$dir"
	ln -sf "$target" "$r/$dir/$name"
done

cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
berthuser:x:1000:1000:berth test user:/home/berthuser:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
staff:x:50:berthuser
berthuser:x:1000:
nogroup:x:65534:
EOF
cat >"$r/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
berthuser:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
chmod 0640 "$r/etc/shadow"

# Fixed mtime for reproducibility (2024-01-01T00:00:00Z).
mtime=@1704067200
common="--format=gnu --sort=name --mtime=$mtime --numeric-owner"

case $out in
/*) abs=$out ;;
*) abs=$(pwd)/$out ;;
esac
rm -f "$abs"
# Everything but /home/berthuser as 0:0 ...
(cd "$r" && tar $common --owner=0 --group=0 \
	--exclude=./home/berthuser -cf "$abs" .)
# ... then /home/berthuser as 1000:1000, appended.
(cd "$r" && tar $common --owner=1000 --group=1000 --no-recursion \
	-rf "$abs" ./home/berthuser)

echo "mkbusybox: wrote $out ($(wc -c <"$abs") bytes)" >&2
