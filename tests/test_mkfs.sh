#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# mkfs.bringfs end to end:
#   test_mkfs.sh files    MKFS DUMPSUPER   image files (any user)
#   test_mkfs.sh blockdev MKFS DUMPSUPER   a loop device (root and
#                                          /dev/loop-control; else exit 77)
#
# Every refusal is checked for: exit status 1, exactly one line on stderr
# starting "mkfs.bringfs: error: <expected reason>", nothing on stdout, and
# the target byte for byte unchanged (sha256) or still absent.
# Everything lives under one mktemp -d directory; loop devices, mounts,
# background lockers and immutable flags are undone in the EXIT trap.
set -u

mode=${1:?mode}
MKFS=${2:?path to mkfs.bringfs}
DUMP=${3:?path to br-dumpsuper}
MiB=1048576

T=$(mktemp -d "${TMPDIR:-/tmp}/brmkfs.XXXXXX") || exit 1
LOOPS=""
MOUNTS=""
PIDS=""
IMMUTABLE=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for m in $MOUNTS; do umount "$m" 2>/dev/null; done
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	for f in $IMMUTABLE; do chattr -i "$f" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fails=0
checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }

# Fingerprint of a target: its sha256, or "absent".
fingerprint() {
	if [ -d "$1" ]; then echo "dir $(ls -A "$1" | sha256sum)"
	elif [ -e "$1" ]; then sha256sum <"$1" | cut -d' ' -f1
	else echo absent; fi
}

# refuse TARGET "expected reason prefix" mkfs-args...
refuse() {
	r_target=$1 r_want=$2
	shift 2
	r_before=$(fingerprint "$r_target")
	"$MKFS" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	r_after=$(fingerprint "$r_target")
	what="mkfs.bringfs $*"
	[ $rc -eq 1 ] || { fail "$what: exit $rc, expected 1"; cat "$T/err" >&2; return; }
	[ "$(wc -l <"$T/err")" -eq 1 ] || { fail "$what: stderr is not one line:"; cat "$T/err" >&2; return; }
	[ -s "$T/out" ] && { fail "$what: wrote to stdout"; return; }
	case "$(cat "$T/err")" in
	"mkfs.bringfs: error: $r_want"*) ;;
	*) fail "$what: stderr '$(cat "$T/err")', expected 'mkfs.bringfs: error: $r_want...'"; return ;;
	esac
	[ "$r_before" = "$r_after" ] || { fail "$what: target changed ($r_before -> $r_after)"; return; }
	ok
}

# field IMAGE KEY: a value from br-dumpsuper
field() { "$DUMP" "$1" | sed -n "s/^$2=//p"; }

# expect_eq DESC GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then ok; else fail "$1: got '$2', want '$3'"; fi
}

# format TARGET args...: must succeed quietly
format() {
	f_target=$1
	shift
	if "$MKFS" -q "$@" "$f_target" >"$T/out" 2>"$T/err"; then
		if [ -s "$T/out" ] || [ -s "$T/err" ]; then
			fail "mkfs -q $* $f_target printed something"
		else ok; fi
	else
		fail "mkfs.bringfs -q $* $f_target failed: $(cat "$T/err")"
	fi
}

# geometry IMAGE dev seg buf: the superblock holds what format.h promises
geometry() {
	g_img=$1 g_dev=$2 g_seg=$3 g_buf=$4
	g_backup=$(( (g_dev / 4096) * 4096 - 4096 ))
	g_n=$(( g_backup / g_seg ))
	"$DUMP" "$g_img" >"$T/dump" 2>"$T/dumperr" || { fail "br-dumpsuper $g_img: $(cat "$T/dumperr")"; return; }
	d() { sed -n "s/^$1=//p" "$T/dump"; }
	expect_eq "$g_img source" "$(d source)" primary
	expect_eq "$g_img version" "$(d version)" 1
	expect_eq "$g_img block_size" "$(d block_size)" 4096
	expect_eq "$g_img dev_size" "$(d dev_size)" "$g_dev"
	expect_eq "$g_img seg_size" "$(d seg_size)" "$g_seg"
	expect_eq "$g_img buf_size" "$(d buf_size)" "$g_buf"
	expect_eq "$g_img seg_count" "$(d seg_count)" "$g_n"
	expect_eq "$g_img log_start" "$(d log_start)" "$g_seg"
	expect_eq "$g_img log_end" "$(d log_end)" $((g_n * g_seg))
	expect_eq "$g_img backup_off" "$(d backup_off)" "$g_backup"
	expect_eq "$g_img slot0" "$(d slot0)" "seq:1 ckpt_addr:0 roll_addr:$g_seg roll_seq:1"
	expect_eq "$g_img slot1" "$(d slot1)" empty
	expect_eq "$g_img newest_slot" "$(d newest_slot)" 0
	# the first log block is zero, so nothing old is replayed
	if dd if="$g_img" bs=4096 skip=$((g_seg / 4096)) count=1 2>/dev/null | cmp -s - "$T/zero4k"; then
		ok
	else
		fail "$g_img: first log block is not zero"
	fi
}

head -c 4096 /dev/zero >"$T/zero4k"

test_files() {
	img=$T/img

	# --- version, help -------------------------------------------------
	expect_eq "-V" "$("$MKFS" -V)" "mkfs.bringfs $("$MKFS" --version | cut -d' ' -f2)"
	"$MKFS" -V | grep -Eq '^mkfs\.bringfs [0-9]+\.[0-9]+\.[0-9]+$' && ok || fail "-V output"
	"$MKFS" --help | grep -q '^Usage: mkfs.bringfs' && ok || fail "--help output"

	# --- formats of several sizes and geometries ------------------------
	# default sizes scale with the device (super.h, br_super_default_sizes)
	format "$img" -s 64M
	geometry "$img" $((64 * MiB)) $MiB $((512 * 1024))
	expect_eq "new file size" "$(stat -c %s "$img")" $((64 * MiB))
	# preallocated: every byte has a block (stat %b is in 512-byte units)
	if [ $(( $(stat -c %b "$img") * 512 )) -ge $((64 * MiB)) ]; then ok; else
		fail "image is not preallocated ($(stat -c %b "$img") blocks)"; fi
	rm -f "$img"

	format "$img" -s 512M -b 64K -S 64K
	geometry "$img" $((512 * MiB)) 65536 65536
	rm -f "$img"
	format "$img" -s 300M -b 4M -S 12M
	geometry "$img" $((300 * MiB)) $((12 * MiB)) $((4 * MiB))
	rm -f "$img"
	format "$img" -b 64M -S 64M -s 384M
	geometry "$img" $((384 * MiB)) $((64 * MiB)) $((64 * MiB))
	rm -f "$img"
	# the largest segment, checked by a dry run (no 6 GiB to preallocate)
	"$MKFS" -n -b 64M -S 1G -s 6G "$img" >"$T/out" 2>&1 || fail "-S 1G -s 6G: $(cat "$T/out")"
	grep -q "segments: *5, 4 for the log" "$T/out" && ok || fail "-S 1G dry run: $(cat "$T/out")"
	[ -e "$img" ] && fail "dry run created $img" || ok
	# SIZE as a positional argument, with the K suffix
	"$MKFS" -q "$img" 131072K && ok || fail "positional size"
	geometry "$img" $((128 * MiB)) $MiB $((512 * 1024))
	rm -f "$img"
	# bigger devices get bigger segments, never above 8 MiB; a buffer
	# size given alone picks a segment of its power-of-two multiples
	for spec in "1G 2 MiB 1 MiB" "2G 4 MiB 1 MiB" "3G 8 MiB 1 MiB" "64G 8 MiB 1 MiB"; do
		set -- $spec
		"$MKFS" -n -s "$1" "$img" >"$T/out" 2>&1 || fail "-n -s $1: $(cat "$T/out")"
		grep -q "segment size: *$2 $3\$" "$T/out" && ok || fail "-s $1: segment size is not $2 $3: $(cat "$T/out")"
		grep -q "buffer size: *$4 $5\$" "$T/out" && ok || fail "-s $1: buffer size is not $4 $5: $(cat "$T/out")"
	done
	"$MKFS" -n -b 4M -s 256M "$img" >"$T/out" 2>&1 || fail "-b 4M: $(cat "$T/out")"
	grep -q "segment size: *4 MiB\$" "$T/out" && ok || fail "-b 4M -s 256M: $(cat "$T/out")"
	"$MKFS" -n -S 2M -s 256M "$img" >"$T/out" 2>&1 || fail "-S 2M: $(cat "$T/out")"
	grep -q "buffer size: *1 MiB\$" "$T/out" && ok || fail "-S 2M -s 256M: $(cat "$T/out")"
	# a segment size given alone takes a buffer it holds two of (the
	# default 1 MiB made -S 512K fail and -S 1M one-buffer segments)
	for spec in "1M 512 KiB" "512K 256 KiB" "64K 64 KiB" "12M 1 MiB"; do
		set -- $spec
		"$MKFS" -n -S "$1" -s 256M "$img" >"$T/out" 2>&1 || fail "-S $1: $(cat "$T/out")"
		grep -q "buffer size: *$2 $3\$" "$T/out" && ok || fail "-S $1 -s 256M: buffer size is not $2 $3: $(cat "$T/out")"
	done

	# --- summary, label, UUID -------------------------------------------
	"$MKFS" -L "données" -s 96M "$img" >"$T/out" 2>"$T/err" || fail "mkfs with label: $(cat "$T/err")"
	[ -s "$T/err" ] && fail "mkfs printed on stderr: $(cat "$T/err")"
	expect_eq "label" "$(field "$img" label)" "données"
	uuid1=$(field "$img" uuid)
	grep -q "UUID: *$uuid1\$" "$T/out" && ok || fail "summary lacks the UUID $uuid1"
	grep -q "label: *données\$" "$T/out" && ok || fail "summary lacks the label"
	grep -q "segment size: *1 MiB\$" "$T/out" && ok || fail "summary lacks the segment size"
	grep -q "buffer size: *512 KiB\$" "$T/out" && ok || fail "summary lacks the buffer size"
	grep -q "size: *100663296 bytes (96 MiB)\$" "$T/out" && ok || fail "summary lacks the size"
	grep -q "segments: *95, 94 for the log" "$T/out" && ok || fail "summary lacks the segments"

	# --- an existing bringfs needs -f; -f gives a new UUID ---------------
	refuse "$img" "$img already contains a bringfs filesystem (use -f to overwrite)" "$img"
	# also when only the backup is left
	cp "$img" "$T/img.primary-gone"
	dd if=/dev/zero of="$T/img.primary-gone" bs=4096 count=1 conv=notrunc 2>/dev/null
	expect_eq "backup after zeroed primary" "$(field "$T/img.primary-gone" source)" backup
	expect_eq "backup uuid" "$(field "$T/img.primary-gone" uuid)" "$uuid1"
	refuse "$T/img.primary-gone" "$T/img.primary-gone already contains a bringfs filesystem" "$T/img.primary-gone"
	rm -f "$T/img.primary-gone"
	format "$img" -f -L x
	uuid2=$(field "$img" uuid)
	[ -n "$uuid2" ] && [ "$uuid2" != "$uuid1" ] && ok || fail "-f did not give a new UUID ($uuid1, $uuid2)"
	expect_eq "existing file keeps its size" "$(field "$img" dev_size)" $((96 * MiB))

	# --- -n writes nothing ------------------------------------------------
	before=$(fingerprint "$img")
	"$MKFS" -n -f "$img" >"$T/out" 2>"$T/err" && ok || fail "-n on an existing image: $(cat "$T/err")"
	grep -q "^Dry run" "$T/out" && ok || fail "-n does not say it is a dry run"
	expect_eq "-n leaves the image" "$(fingerprint "$img")" "$before"
	"$MKFS" -n -s 64M "$T/new" >"$T/out" 2>&1 && ok || fail "-n on a new file: $(cat "$T/out")"
	[ -e "$T/new" ] && fail "-n created $T/new" || ok
	# a dry run still refuses what the real run would
	refuse "$img" "$img already contains a bringfs filesystem" -n "$img"

	# --- refusals, target unchanged --------------------------------------
	refuse "$T/new" "size 4194304 is below the minimum of 64 MiB" -s 4M "$T/new"
	refuse "$T/new" "size 67108865 is not a multiple of 4096" -s 67108865 "$T/new"
	refuse "$T/new" "buffer size 32768 must be a multiple of 4096 from 64 KiB to 64 MiB" -b 32K -s 1G "$T/new"
	refuse "$T/new" "buffer size 134217728 must be a multiple of 4096 from 64 KiB to 64 MiB" -b 128M -S 1G -s 4G "$T/new"
	refuse "$T/new" "buffer size 65537 must be a multiple of 4096" -b 65537 -s 1G "$T/new"
	refuse "$T/new" "segment size 9437184 is not a multiple of the buffer size 2 MiB" -S 9M -b 2M -s 1G "$T/new"
	refuse "$T/new" "segment size 2147483648 is above the maximum of 1 GiB" -S 2G -s 64G "$T/new"
	refuse "$T/new" "size 67108864 holds 0 log segments of 64 MiB, at least 4 are needed" -S 64M -s 64M "$T/new"
	refuse "$T/new" "$T/new does not exist and no size was given (use -s SIZE)" "$T/new"
	refuse "$T/new" "invalid size '12X'" -s 12X "$T/new"
	refuse "$T/new" "invalid size '-1'" "$T/new" -- -1
	refuse "$T/new" "unknown option '-Z' (try --help)" -Z -s 64M "$T/new"
	refuse "$T/new" "unknown option '--bogus' (try --help)" --bogus -s 64M "$T/new"
	refuse "$T/new" "option '-L' needs an argument" -s 64M "$T/new" -L
	refuse "$T/new" "unexpected argument 'extra'" "$T/new" 64M extra
	refuse "$T/new" "size given twice" -s 64M "$T/new" 64M
	refuse "$T/new" "no target given" -s 64M
	refuse "$T/new" "label is 64 bytes long, the maximum is 63" \
		-L "$(printf '%064d' 0)" -s 64M "$T/new"
	refuse "$T/new" "label is not valid UTF-8" -L "$(printf 'a\300\200')" -s 64M "$T/new"
	mkdir "$T/dir"
	refuse "$T/dir" "$T/dir is not a regular file or a block device" "$T/dir"
	truncate -s 0 "$T/empty"
	refuse "$T/empty" "$T/empty is empty and no size was given (use -s SIZE)" "$T/empty"
	truncate -s $((64 * MiB + 100)) "$T/odd"
	refuse "$T/odd" "size 67108964 of $T/odd is not a multiple of 4096" "$T/odd"
	refuse "$T/odd" "size 0 is below the minimum" -s 0 "$T/odd"

	# another filesystem / a partition table, without -f
	if command -v mkfs.ext4 >/dev/null; then
		truncate -s 64M "$T/ext4"
		mkfs.ext4 -q -F "$T/ext4" >/dev/null 2>&1 || fail "mkfs.ext4 failed"
		refuse "$T/ext4" "$T/ext4 already contains a ext4 filesystem (use -f to overwrite)" "$T/ext4"
		format "$T/ext4" -f
		# -f wipes the old signature: nothing but bringfs is left
		if blkid -p "$T/ext4" >/dev/null 2>&1; then
			fail "ext4 signature survived mkfs -f: $(blkid -p "$T/ext4")"
		else ok; fi
		geometry "$T/ext4" $((64 * MiB)) $MiB $((512 * 1024))
	else
		echo "note: mkfs.ext4 missing, ext4 refusal not tested" >&2
	fi
	truncate -s 64M "$T/mbr"
	# one Linux partition at LBA 2048 and the 55 AA signature
	printf '\000\040\041\000\203\212\010\202\000\010\000\000\000\000\001\000' |
		dd of="$T/mbr" bs=1 seek=446 conv=notrunc 2>/dev/null
	printf '\125\252' | dd of="$T/mbr" bs=1 seek=510 conv=notrunc 2>/dev/null
	refuse "$T/mbr" "$T/mbr already contains a dos partition table (use -f to overwrite)" "$T/mbr"

	# --- re-format leaves nothing old where it matters -------------------
	# an image full of 0xAA (no signature) is formatted without -f; the
	# slot 1 block and the first log block come out zero
	head -c $((64 * MiB)) /dev/zero | tr '\000' '\252' >"$T/dirty"
	format "$T/dirty"
	geometry "$T/dirty" $((64 * MiB)) $MiB $((512 * 1024))
	# an existing file is resized to -s
	truncate -s 100M "$T/resize"
	format "$T/resize" -s 200M
	expect_eq "extended file" "$(stat -c %s "$T/resize")" $((200 * MiB))
	format "$T/resize" -f -s 80M
	expect_eq "shrunk file" "$(stat -c %s "$T/resize")" $((80 * MiB))
	geometry "$T/resize" $((80 * MiB)) $MiB $((512 * 1024))

	# --- in use: locked, mounted, read-only ------------------------------
	if command -v flock >/dev/null; then
		# the subshell becomes `sleep` (exec), so $! is what holds the lock
		( flock -x 9 && touch "$T/locked" && exec sleep 60 ) 9<"$img" >/dev/null 2>&1 &
		PIDS="$PIDS $!"
		i=0
		while [ ! -e "$T/locked" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
		refuse "$img" "$img is locked by another process" -f "$img"
		for p in $PIDS; do kill "$p"; wait "$p" 2>/dev/null; done
		PIDS=""
	else
		echo "note: flock(1) missing, lock refusal not tested" >&2
	fi

	if [ "$(id -u)" = 0 ] && mkdir "$T/mnt" && mount -t tmpfs "$img" "$T/mnt" 2>/dev/null; then
		# a mount whose source is the image, as a fuse.bringfs mount shows it
		MOUNTS="$T/mnt $MOUNTS"
		refuse "$img" "$img is mounted on $T/mnt" -f "$img"
		umount "$T/mnt" && MOUNTS=""
	else
		echo "note: cannot mount here, mounted-image refusal not tested" >&2
	fi

	cp "$img" "$T/ro"
	ro_done=""
	if [ "$(id -u)" != 0 ]; then
		chmod 0444 "$T/ro" && ro_done="chmod"
	elif chattr +i "$T/ro" 2>/dev/null; then
		IMMUTABLE="$T/ro" ro_done="chattr +i"
	fi
	if [ -n "$ro_done" ]; then
		refuse "$T/ro" "cannot open $T/ro for writing:" -f "$T/ro"
	else
		echo "note: cannot make a read-only file here, read-only refusal not tested" >&2
	fi
	[ -n "$IMMUTABLE" ] && chattr -i "$T/ro" && IMMUTABLE=""
}

test_blockdev() {
	[ "$(id -u)" = 0 ] || { echo "SKIP: block device tests need root for losetup"; exit 77; }
	[ -e /dev/loop-control ] || { echo "SKIP: no /dev/loop-control"; exit 77; }
	command -v losetup >/dev/null || { echo "SKIP: losetup missing"; exit 77; }
	truncate -s 96M "$T/backing"
	dev=$(losetup -f --show "$T/backing" 2>"$T/err") ||
		{ echo "SKIP: losetup failed: $(cat "$T/err")"; exit 77; }
	LOOPS="$dev"

	"$MKFS" "$dev" >"$T/out" 2>"$T/err" || fail "mkfs $dev: $(cat "$T/err")"
	[ -s "$T/err" ] && fail "mkfs $dev printed on stderr: $(cat "$T/err")"
	grep -q '^Discarding device blocks: ' "$T/out" && ok || fail "no discard step on $dev"
	grep -q "block device" "$T/out" && ok || fail "summary does not say block device"
	geometry "$dev" $((96 * MiB)) $MiB $((512 * 1024))

	refuse "$dev" "$dev already contains a bringfs filesystem" "$dev"
	refuse "$dev" "size 67108864 differs from the size of $dev" -f -s 64M "$dev"
	refuse "$T/backing" "$T/backing is in use as the backing file of $dev" "$T/backing"

	"$MKFS" -f -K -S 4M "$dev" >"$T/out" 2>"$T/err" || fail "mkfs -K $dev: $(cat "$T/err")"
	grep -q 'Discarding' "$T/out" && fail "-K still discarded" || ok
	geometry "$dev" $((96 * MiB)) $((4 * MiB)) $MiB

	# mounted (ext4 on the loop device): refused even with -f
	if command -v mkfs.ext4 >/dev/null && mkfs.ext4 -q -F "$dev" >/dev/null 2>&1 &&
	   mkdir -p "$T/mnt" && mount -o ro,noload "$dev" "$T/mnt" 2>/dev/null; then
		# read-only, so ext4 itself does not change the bytes we compare
		MOUNTS="$T/mnt"
		refuse "$dev" "$dev is mounted on $T/mnt (ext4)" -f "$dev"
		umount "$T/mnt" && MOUNTS=""
		refuse "$dev" "$dev already contains a ext4 filesystem" "$dev"
	else
		echo "note: cannot mount ext4 on $dev, mounted-device refusal not tested" >&2
	fi

	# read-only device
	rodev=$(losetup -r -f --show "$T/backing" 2>/dev/null) && {
		LOOPS="$rodev $LOOPS"
		refuse "$rodev" "cannot open $rodev for writing:" -f "$rodev"
	}
	[ -n "${rodev:-}" ] || echo "note: losetup -r failed, read-only refusal not tested" >&2
}

case "$mode" in
files) test_files ;;
blockdev) test_blockdev ;;
*) echo "usage: $0 files|blockdev MKFS DUMPSUPER" >&2; exit 1 ;;
esac

echo "$mode: $checks checks passed, $fails failed"
[ $fails -eq 0 ]
