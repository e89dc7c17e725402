#!/bin/bash
# bringfs against ext4 and the raw disk, same disk, same run.
#
#   tests/bench/fs-bench.sh [--quick] [--ext4-only] [--dir DIR]
#                           [--mkfs PATH] [--bringfs PATH] [--size SIZE]
#
# Makes a temp dir (under --dir, default /var/tmp: the disk the repo is on),
# formats a bringfs image file there and mounts it, makes an ext4 image file
# there (mkfs.ext4 -F, loop device with direct I/O, so that neither side
# gets the host page cache under its "disk"), runs the same workloads on
# both and prints one line per workload:
#
#   bench=<name> bringfs=<v> ext4=<v> ratio=<v> unit=<u>
#   bench=raw-seqwrite mib_s=<v>        (fio O_DIRECT sequential write, same disk)
#
# ratio = bringfs / ext4 for throughput (MiB/s, IOPS, ops/s) and
# ext4 / bringfs for times (seconds): above 1 is better for bringfs, always.
#
# Workloads (fio 3.x, psync unless said):
#   seqwrite            2 GiB, bs 1M, buffered, end_fsync            MiB/s
#   randwrite           4 KiB random writes in a 1 GiB file, 15 s, end_fsync   IOPS
#   randwrite-direct    the same with O_DIRECT                         IOPS
#   fsync-append-1/-4   4 KiB appends each followed by fdatasync, 1 and 4 jobs   IOPS
#   seqread-cold        the 2 GiB seqwrite file after remount + drop_caches    MiB/s
#   meta-create/-stat/-unlink   50 000 empty files (metabench.c)       ops/s
#   untar               tar x of a tarball of /usr/include, then sync -f   s
# --quick shrinks sizes and durations for a smoke run.
#
# Needs root (loop mount, drop_caches).  Without a loop mount the ext4 column
# is the host directory instead (said in the output).  --ext4-only runs only
# the ext4 and raw parts (bringfs=NA).  Cleans up on exit or failure:
# unmounts both, detaches the loop device, deletes the images.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

quick=0
ext4_only=0
base=/var/tmp
MKFS=$REPO/build/mkfs/mkfs.bringfs
BRINGFS=$REPO/build/fs/bringfs
img_size=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--ext4-only) ext4_only=1 ;;
	--dir) base=$2; shift ;;
	--mkfs) MKFS=$2; shift ;;
	--bringfs) BRINGFS=$2; shift ;;
	--size) img_size=$2; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0 ;;
	*) echo "fs-bench: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

# absolute: the remount helpers run from /
[ -e "$MKFS" ] && MKFS=$(readlink -f "$MKFS")
[ -e "$BRINGFS" ] && BRINGFS=$(readlink -f "$BRINGFS")

if [ $quick = 1 ]; then
	SEQ=256M; RAND=256M; DUR=3; NMETA=5000; IMG=${img_size:-3G}
else
	SEQ=2G; RAND=1G; DUR=15; NMETA=50000; IMG=${img_size:-10G}
fi

log() { echo "fs-bench: $*" >&2; }
die() { log "$*"; exit 1; }

command -v fio >/dev/null || die "fio not installed"
if [ $ext4_only = 0 ]; then
	[ -x "$MKFS" ] || die "mkfs.bringfs not built ($MKFS): build it, or run with --ext4-only"
	[ -x "$BRINGFS" ] || die "bringfs not built ($BRINGFS): build it, or run with --ext4-only"
	[ -e /dev/fuse ] || die "/dev/fuse missing: cannot mount bringfs (use --ext4-only)"
fi

T=$(mktemp -d -p "$base" fs-bench.XXXXXX) || die "mktemp -d -p $base"
T=$(cd "$T" && pwd -P)
LOOP=
EXT4_MOUNTED=0
# the mount harness: br_mount / br_unmount (BR_* variables below)
. "$REPO/tests/mount/lib.sh"
BR_TMP=$T/bringfs-state
BR_IMG=$T/bringfs.img
BR_MNT=$T/bringfs
BR_BRINGFS=$BRINGFS
BR_MOUNT_OPTS=${BR_MOUNT_OPTS:-}
mkdir -p "$BR_TMP" "$BR_MNT" "$T/ext4"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	cd / || true
	if br_any_mount 2>/dev/null; then
		fusermount3 -u "$BR_MNT" 2>/dev/null || fusermount3 -uz "$BR_MNT" 2>/dev/null
	fi
	for _ in $(seq 1 100); do br_daemon_alive || break; sleep 0.1; done
	br_daemon_alive && kill -KILL "$(br_daemon_pid)" 2>/dev/null
	if [ $EXT4_MOUNTED = 1 ]; then
		umount "$T/ext4" 2>/dev/null || umount -l "$T/ext4"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	rm -rf --one-file-system "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers -----------------------------------------------------------------------
drop_caches() {
	sync
	if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		[ -z "${warned_drop:-}" ] && log "cannot drop caches (not root?): cold reads may be warm"
		warned_drop=1
	fi
}

# fio_run DIR FIELD fio-args...: prints one terse field (48 write KiB/s,
# 49 write IOPS, 7 read KiB/s, 8 read IOPS); "ERR" when fio fails.
fio_run() {
	local dir=$1 field=$2 out
	shift 2
	if ! out=$(cd "$dir" && fio --minimal --name=bench --directory="$dir" "$@" 2>"$T/fio.err"); then
		log "fio failed in $dir: $(head -c 500 "$T/fio.err")"
		echo ERR
		return
	fi
	# several jobs (numjobs) give one line each without group_reporting
	echo "$out" | awk -F ';' -v f="$field" '{ s += $f } END { printf "%.0f", s }'
}

kib_to_mib() { [ "$1" = ERR ] && echo ERR || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

ratio() { # higher-is-better ratio: bringfs/ext4 ($3 = time: ext4/bringfs)
	awk -v b="$1" -v e="$2" -v t="${3:-}" 'BEGIN {
		if (b !~ /^[0-9.]+$/ || e !~ /^[0-9.]+$/ || b == 0 || e == 0) { print "NA"; exit }
		printf "%.2f", (t == "time") ? e / b : b / e }'
}

declare -A R	# R[fs,bench] = value
FSES=(ext4)
[ $ext4_only = 0 ] && FSES=(bringfs ext4)
dir_of() { [ "$1" = bringfs ] && echo "$BR_MNT" || echo "$T/ext4"; }

remount_fs() { # cold cache for the next read
	case $1 in
	bringfs)
		br_unmount || die "bringfs unmount failed"
		drop_caches
		br_mount
		;;
	ext4)
		if [ $EXT4_MOUNTED = 1 ]; then
			umount "$T/ext4" || die "umount ext4"
			drop_caches
			mount "$LOOP" "$T/ext4" || die "mount ext4"
		else
			drop_caches
		fi
		;;
	esac
}

# ---- set up ------------------------------------------------------------------------------
log "working in $T (images of $IMG, on $(df --output=source "$T" | tail -n 1))"
ext4_label=ext4
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null; then
	truncate -s "$IMG" "$T/ext4.img"
	mkfs.ext4 -F -q -E lazy_itable_init=0,lazy_journal_init=0 "$T/ext4.img" || die "mkfs.ext4"
	if LOOP=$(losetup -f --show --direct-io=on "$T/ext4.img" 2>/dev/null) &&
		mount "$LOOP" "$T/ext4" 2>/dev/null; then
		EXT4_MOUNTED=1
	else
		[ -n "$LOOP" ] && losetup -d "$LOOP"
		LOOP=
	fi
fi
if [ $EXT4_MOUNTED = 0 ]; then
	log "NOTE: no loop mount possible: the 'ext4' column is the host directory $T/ext4 ($(stat -f -c %T "$T"))"
	ext4_label=host
	rm -f "$T/ext4.img"
fi

if [ $ext4_only = 0 ]; then
	"$MKFS" -f -q -s "$IMG" "$BR_IMG" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log" >&2; die "mkfs.bringfs failed"; }
	br_mount
	log "bringfs mounted on $BR_MNT"
fi

cc -O2 -o "$T/metabench" "$HERE/metabench.c" || die "cannot compile metabench.c"
tarball=$T/include.tar
tar -C /usr -cf "$tarball" include 2>/dev/null || die "tar of /usr/include"
log "untar input: $(du -m "$tarball" | cut -f1) MiB, $(tar -tf "$tarball" | wc -l) entries"

# ---- raw disk ---------------------------------------------------------------------------------
mkdir -p "$T/raw"
raw_engine=psync
fio --enghelp 2>/dev/null | grep -qw io_uring && raw_engine=io_uring
raw=$(fio_run "$T/raw" 48 --filename=raw --rw=write --bs=1M --size="$SEQ" --direct=1 \
	--ioengine="$raw_engine" --iodepth=8 --end_fsync=1)
rm -f "$T/raw/raw"

# ---- workloads ----------------------------------------------------------------------------------
for fs in "${FSES[@]}"; do
	d=$(dir_of "$fs")
	log "$fs: seqwrite"
	R[$fs,seqwrite]=$(kib_to_mib "$(fio_run "$d" 48 --filename=seq --rw=write --bs=1M --size="$SEQ" \
		--ioengine=psync --end_fsync=1)")

	log "$fs: randwrite"
	R[$fs,randwrite]=$(fio_run "$d" 49 --filename=rand --rw=randwrite --bs=4k --size="$RAND" \
		--ioengine=psync --time_based --runtime="$DUR" --end_fsync=1)
	log "$fs: randwrite-direct"
	R[$fs,randwrite-direct]=$(fio_run "$d" 49 --filename=rand --rw=randwrite --bs=4k --size="$RAND" \
		--ioengine=psync --direct=1 --time_based --runtime="$DUR" --end_fsync=1)
	rm -f "$d/rand"

	for j in 1 4; do
		log "$fs: fsync-append numjobs=$j"
		R[$fs,fsync-append-$j]=$(fio_run "$d" 49 --rw=write --bs=4k --size=1G --fdatasync=1 \
			--ioengine=psync --numjobs="$j" --time_based --runtime="$DUR" --file_append=1 \
			--create_on_open=1 --filename_format='append.$jobnum')
		rm -f "$d"/append.*
	done

	log "$fs: seqread-cold"
	remount_fs "$fs"
	R[$fs,seqread-cold]=$(kib_to_mib "$(fio_run "$d" 7 --filename=seq --rw=read --bs=1M --size="$SEQ" \
		--ioengine=psync)")
	rm -f "$d/seq"

	log "$fs: meta ($NMETA files)"
	mkdir "$d/meta"
	if m=$("$T/metabench" "$d/meta" "$NMETA"); then
		for k in create stat unlink; do
			R[$fs,meta-$k]=$(echo "$m" | tr ' ' '\n' | sed -n "s/^$k=//p")
		done
	else
		for k in create stat unlink; do R[$fs,meta-$k]=ERR; done
	fi
	rmdir "$d/meta"

	log "$fs: untar"
	mkdir "$d/untar"
	sync
	t0=$(date +%s.%N)
	if tar -C "$d/untar" -xf "$tarball" && sync -f "$d/untar"; then
		t1=$(date +%s.%N)
		R[$fs,untar]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	else
		R[$fs,untar]=ERR
	fi
	rm -rf "$d/untar"
done

# ---- report ------------------------------------------------------------------------------------------
[ $ext4_label = host ] && echo "# NOTE: the ext4 column is the host directory (no loop mount possible)"
[ $ext4_only = 1 ] && echo "# --ext4-only: bringfs not measured"
[ $quick = 1 ] && echo "# --quick: sizes $SEQ/$RAND, ${DUR}s, $NMETA files"
echo "# ratio > 1 is better for bringfs: bringfs/ext4 for rates, ext4/bringfs for times (untar)"
echo "# untar: 'sync -f' is a syncfs(); FUSE forwards it to the daemon only if the daemon opts in"
for spec in seqwrite:MiB/s randwrite:IOPS randwrite-direct:IOPS fsync-append-1:IOPS \
	fsync-append-4:IOPS seqread-cold:MiB/s meta-create:ops/s meta-stat:ops/s meta-unlink:ops/s \
	untar:s; do
	b=${spec%%:*}
	u=${spec#*:}
	bv=${R[bringfs,$b]:-NA}
	ev=${R[ext4,$b]:-NA}
	kind=rate
	[ "$u" = s ] && kind=time
	echo "bench=$b bringfs=$bv ext4=$ev ratio=$(ratio "$bv" "$ev" "$kind") unit=$u"
done
echo "bench=raw-seqwrite mib_s=$(kib_to_mib "$raw")"
