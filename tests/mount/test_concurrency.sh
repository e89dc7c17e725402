#!/bin/bash
# Concurrency test (test_concurrency.c): threads writing disjoint and
# overlapping ranges of shared files, many files at once, O_APPEND records;
# then remount and verify again.
#
#   test_concurrency.sh [MKFS BRINGFS [TEST_CONCURRENCY [options...]]]
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-2G}
br_setup "$1" "$2"
PROG=$(readlink -f "${3:-$BR_REPO/build/tests/mount/test_concurrency}")
shift $(($# < 3 ? $# : 3))
[ -x "$PROG" ] || br_die "test_concurrency not built: $PROG"
mkdir "$BR_MNT/conc" || br_die "mkdir"
br_run "$PROG" --dir "$BR_MNT/conc" --remount "$BR_TMP/remount" "$@"
