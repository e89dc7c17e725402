#!/bin/bash
# Randomized model test (test_model.c): random operations on bringfs and on a
# shadow directory on the host, compared after every operation, with
# remounts in between (via the harness's $BR_TMP/remount).
#
#   test_model.sh [MKFS BRINGFS [TEST_MODEL [test_model options...]]]
#   e.g. test_model.sh build/mkfs/mkfs.bringfs build/fs/bringfs \
#            build/tests/mount/test_model --seed 1234 --ops 20000
#   BR_MODEL_ARGS: extra options (e.g. "--seed 42") when run from meson.
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-2G}
br_setup "$1" "$2"
MODEL=$(readlink -f "${3:-$BR_REPO/build/tests/mount/test_model}")
shift $(($# < 3 ? $# : 3))
[ -x "$MODEL" ] || br_die "test_model not built: $MODEL"

mkdir "$BR_MNT/model" "$BR_TMP/shadow" || br_die "mkdir"
# shellcheck disable=SC2086
br_run "$MODEL" --mnt "$BR_MNT/model" --shadow "$BR_TMP/shadow" --remount "$BR_TMP/remount" \
	${BR_MODEL_ARGS:-} "$@"
exit $?
