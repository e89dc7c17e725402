#!/bin/bash
# Error paths with exact errno, sparse files and SEEK_DATA/SEEK_HOLE, a 5 GiB
# sparse file with data beyond 4 GiB, a file of 10 000 extents (errs.c);
# then remount and verify the files again (errs --verify).
#
#   test_errors.sh [MKFS BRINGFS [ERRS]]
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-8G}
br_setup "$1" "$2"
ERRS=$(readlink -f "${3:-$BR_REPO/build/tests/mount/errs}")
[ -x "$ERRS" ] || br_die "errs program not built: $ERRS"

br_run "$ERRS" "$BR_MNT"; rc1=$?
[ $rc1 = 0 ] && br_pass "errs (all checks)" || br_failed "errs: see the FAIL lines above"
br_remount
br_run "$ERRS" "$BR_MNT" --verify; rc2=$?
[ $rc2 = 0 ] && br_pass "errs --verify after remount" || br_failed "errs --verify after remount"
br_finish
