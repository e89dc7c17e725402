#!/bin/bash
# Shared by tests/crash/test_*.sh, on top of tests/mount/lib.sh (temp dir,
# mkfs, mount, cleanup traps).  Usage in a test:
#
#     . "$(dirname "$0")/common.sh"
#     cr_init "$@"          # MKFS BRINGFS LOGCUT KILL_TORTURE [--rounds N] [--seed S]
#
# Sets CR_LOGCUT, CR_KT, CR_ROUNDS (from --rounds, else $CR_DEFAULT_ROUNDS),
# CR_SEED (from --seed, else random; always printed so a failure can be
# replayed), BR_FSCK (fsck.bringfs if built, else empty).
CR_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$CR_DIR/../mount/lib.sh"

cr_init() {
	CR_MKFS_ARG=${1:-}
	CR_FS_ARG=${2:-}
	CR_LOGCUT=${3:-$BR_REPO/build/tests/crash/logcut}
	CR_KT=${4:-$BR_REPO/build/tests/crash/kill_torture}
	shift $(($# < 4 ? $# : 4))
	CR_ROUNDS=${CR_DEFAULT_ROUNDS:-10}
	CR_SEED=""
	while [ $# -gt 0 ]; do
		case $1 in
		--rounds) CR_ROUNDS=$2; shift 2 ;;
		--seed) CR_SEED=$2; shift 2 ;;
		*) echo "unknown argument $1" >&2; exit 2 ;;
		esac
	done
	# absolute paths: lib.sh's unmount does cd /
	local v
	for v in CR_MKFS_ARG CR_FS_ARG CR_LOGCUT CR_KT; do
		[ -n "${!v}" ] && [ -e "${!v}" ] && printf -v "$v" '%s' "$(readlink -f "${!v}")"
	done
	[ -n "$CR_SEED" ] || CR_SEED=$(( $(date +%s%N) % 1000000007 ))
	[ -x "$CR_LOGCUT" ] || br_skip "logcut not built: $CR_LOGCUT"
	[ -x "$CR_KT" ] || br_skip "kill_torture not built: $CR_KT"
	command -v flock >/dev/null || br_skip "flock(1) not installed (util-linux)"
	BR_FSCK=${BR_FSCK:-$BR_REPO/build/mkfs/fsck.bringfs}
	[ -x "$BR_FSCK" ] || BR_FSCK=""
	echo "seed=$CR_SEED rounds=$CR_ROUNDS (replay: $0 ... --seed $CR_SEED --rounds $CR_ROUNDS)"
	echo "fsck: ${BR_FSCK:-not built, not run}"
}

# cr_rand SEED LO HI: a deterministic integer in [LO, HI].
cr_rand() {
	awk -v s="$1" -v lo="$2" -v hi="$3" 'BEGIN { srand(s); print int(lo + rand() * (hi - lo + 1)) }'
}

# cr_wait_unlocked IMAGE: wait (10 s at most) until no process holds the
# image's flock: a SIGKILLed daemon's io_uring may still hold the file for
# a moment after the process is gone.
cr_wait_unlocked() {
	local i
	for i in $(seq 1 100); do
		flock -n -x "$1" true 2>/dev/null && return 0
		sleep 0.1
	done
	echo "image $1 still locked 10 s after the daemon died" >&2
	return 1
}

# cr_kill_daemon: SIGKILL the mounted daemon, clear the dead mount
# (fusermount3 -uz), wait until its wrapper recorded the exit status and
# the image is unlocked.
cr_kill_daemon() {
	local pid i
	pid=$(br_daemon_pid)
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	for i in $(seq 1 100); do
		[ -e "$BR_TMP/daemon.rc" ] && break
		sleep 0.05
	done
	fusermount3 -uz "$BR_MNT" 2>/dev/null
	for i in $(seq 1 50); do
		br_any_mount || break
		sleep 0.1
	done
	BR_MOUNTED=0
	br_any_mount && { echo "mount $BR_MNT still present after fusermount3 -uz" >&2; return 1; }
	cr_wait_unlocked "$BR_IMG"
}

# cr_fsck DESC: run fsck.bringfs on the (unmounted) image if it is built;
# it must exit 0.
cr_fsck() {
	[ -n "$BR_FSCK" ] || return 0
	local out
	if out=$("$BR_FSCK" "$BR_IMG" 2>&1); then
		br_pass "fsck clean: $1"
	else
		br_failed "fsck.bringfs exit $? on $1"
		printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
	fi
}

# cr_fsck_repair DESC: on an image that mounted, fsck.bringfs -y must
# exit 0 (clean) or 1 (repaired), and a following -n run must exit 0.
cr_fsck_repair() {
	[ -n "$BR_FSCK" ] || return 0
	local out rc
	out=$("$BR_FSCK" -y "$BR_IMG" 2>&1)
	rc=$?
	if [ $rc -gt 1 ]; then
		br_failed "fsck.bringfs -y exit $rc on $1"
		printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
		return
	fi
	if out=$("$BR_FSCK" -n "$BR_IMG" 2>&1); then
		br_pass "fsck -y exit $rc$([ $rc = 1 ] && printf ' (%s)' "$(printf '%s\n' "$out" | grep -c . ) lines"), then -n clean: $1"
	else
		br_failed "fsck.bringfs -n exit $? after -y on $1"
		printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
	fi
}

# cr_tree_sum DIR: a digest of names, types, sizes and contents below DIR.
cr_tree_sum() {
	(
		cd "$1" || exit 1
		find . -printf '%p %y %s\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	) | sha256sum | cut -d' ' -f1
}
