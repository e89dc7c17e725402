#!/bin/bash
# Random 4 KiB O_DIRECT overwrites of a file filling 90 % of df's size
# (overwrite.c, as fio's randwrite --direct=1): every write is whole, every
# block reads back as last written, and fsck finds the image clean after
# a clean unmount.
#
# Run on segments of one buffer (-S 1M -b 1M), where the open buffer's
# bytes take up to a segment of the room above the reserve: a write used
# to be granted what was left there at once, and a running cleaning pass
# holding the rest made 4 KiB writes short, which FUSE turns into EIO (4
# of 4 runs on this 256 MiB image; core/fsys.c space_check now cleans
# before it cuts a write short).
#
#   test_overwrite.sh [MKFS BRINGFS [OVERWRITE]]
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-256M}
BR_MKFS_OPTS=${BR_MKFS_OPTS:--S 1M -b 1M}
br_setup "$1" "$2"
[ -n "${BR_TEST_NOMOUNT_DIR:-}" ] && br_skip "needs a bringfs mount (90 % of a small image)"
TOOL=$(readlink -f "${3:-$BR_REPO/build/tests/mount/overwrite}")
[ -x "$TOOL" ] || br_die "overwrite not built: $TOOL"
FSCK=$(dirname "$BR_MKFS")/fsck.bringfs
[ -x "$FSCK" ] || br_die "fsck.bringfs not built: $FSCK"

size=$(df -B1 --output=size "$BR_MNT" | tail -n 1)
br_log "file of $((size * 9 / 10 >> 20)) MiB, $((size * 12 / 10 >> 20)) MiB of overwrites"
if br_run "$TOOL" "$BR_MNT/data" $((size * 9 / 10)) $((size * 12 / 10)); then
	br_pass "overwrites at 90 %: whole, and read back as written"
else
	br_failed "overwrites at 90 % (overwrite's report above)"
fi
if br_unmount; then br_pass "clean unmount"; else br_failed "clean unmount"; fi
br_check "fsck -n after the overwrites" "$FSCK" -n "$BR_IMG"
br_finish
