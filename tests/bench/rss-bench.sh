#!/bin/bash
# The daemon's memory: resident set size of bringfs after writing a large
# file sequentially, and after small random overwrites of another file.
# DESIGN.md: memory grows with fragmentation (extents), not bytes stored.
#
#   tests/bench/rss-bench.sh [--quick] [--dir DIR] [--mkfs PATH] [--bringfs PATH]
#
# Prints
#   bench=rss idle rss_mib=<v>                       (just mounted)
#   bench=rss seq_gib=8 rss_mib=<v>                  (after 8 GiB, bs 1M, fsync)
#   bench=rss randwrite_gib=1 rss_mib=<v>            (then a 1 GiB file and
#                                  1 GiB of 4 KiB O_DIRECT random overwrites)
# --quick: 1 GiB sequential, 256 MiB random (the names say so).
# Cleans up on exit: unmounts, deletes the image.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
base=/var/tmp
MKFS=$REPO/build/mkfs/mkfs.bringfs
BRINGFS=$REPO/build/fs/bringfs
SEQ_GIB=8
RAND_MIB=1024
while [ $# -gt 0 ]; do
	case $1 in
	--quick) SEQ_GIB=1; RAND_MIB=256 ;;
	--dir) base=$2; shift ;;
	--mkfs) MKFS=$2; shift ;;
	--bringfs) BRINGFS=$2; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0 ;;
	*) echo "rss-bench: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
log() { echo "rss-bench: $*" >&2; }
die() { log "$*"; exit 1; }
command -v fio >/dev/null || die "fio not installed"
MKFS=$(readlink -f "$MKFS"); BRINGFS=$(readlink -f "$BRINGFS")
[ -x "$MKFS" ] && [ -x "$BRINGFS" ] || die "binaries not built ($MKFS, $BRINGFS)"
[ -e /dev/fuse ] || die "/dev/fuse missing"

T=$(mktemp -d -p "$base" rss-bench.XXXXXX) || die "mktemp -d -p $base"
T=$(cd "$T" && pwd -P)
. "$REPO/tests/mount/lib.sh"
BR_TMP=$T/state
BR_IMG=$T/bringfs.img
BR_MNT=$T/mnt
BR_BRINGFS=$BRINGFS
BR_MOUNT_OPTS=${BR_MOUNT_OPTS:-}
mkdir -p "$BR_TMP" "$BR_MNT"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	cd / || true
	if br_any_mount 2>/dev/null; then
		fusermount3 -u "$BR_MNT" 2>/dev/null || fusermount3 -uz "$BR_MNT" 2>/dev/null
	fi
	for _ in $(seq 1 100); do br_daemon_alive || break; sleep 0.1; done
	br_daemon_alive && kill -KILL "$(br_daemon_pid)" 2>/dev/null
	rm -rf --one-file-system "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rss_mib() {
	awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$(br_daemon_pid)/status"
}

# room for both files and their overwrites in the log, plus slack
img_gib=$((SEQ_GIB + 2 * (RAND_MIB + 1023) / 1024 + 2))
"$MKFS" -f -q -s "${img_gib}G" "$BR_IMG" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log" >&2; die "mkfs"; }
br_mount
echo "bench=rss idle rss_mib=$(rss_mib)"

log "writing ${SEQ_GIB} GiB sequentially"
fio --minimal --name=seq --directory="$BR_MNT" --filename=seq --rw=write --bs=1M \
	--size="${SEQ_GIB}G" --ioengine=psync --end_fsync=1 >/dev/null 2>"$T/fio.err" ||
	die "fio seq: $(head -c 300 "$T/fio.err")"
echo "bench=rss seq_gib=$SEQ_GIB rss_mib=$(rss_mib)"

log "1 GiB file, then ${RAND_MIB} MiB of 4 KiB random O_DIRECT overwrites"
fio --minimal --name=lay --directory="$BR_MNT" --filename=rand --rw=write --bs=1M \
	--size="${RAND_MIB}M" --ioengine=psync --end_fsync=1 >/dev/null 2>"$T/fio.err" ||
	die "fio layout: $(head -c 300 "$T/fio.err")"
fio --minimal --name=rand --directory="$BR_MNT" --filename=rand --rw=randwrite --bs=4k \
	--size="${RAND_MIB}M" --io_size="${RAND_MIB}M" --direct=1 --ioengine=psync \
	--randrepeat=0 --norandommap --end_fsync=1 >/dev/null 2>"$T/fio.err" ||
	die "fio randwrite: $(head -c 300 "$T/fio.err")"
echo "bench=rss randwrite_gib=$(awk -v m="$RAND_MIB" 'BEGIN { printf "%g", m / 1024 }') rss_mib=$(rss_mib)"
br_unmount || die "unmount"
