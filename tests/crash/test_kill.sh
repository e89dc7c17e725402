#!/bin/bash
# SIGKILL torture: a fsync workload (kill_torture run: 2 workers, creates,
# appends, overwrites, renames over existing names, unlinks, file and
# directory fsyncs, journal of acknowledged state outside the filesystem)
# runs on a bringfs mount; at a random moment the daemon gets SIGKILL
# (kill -9, then fusermount3 -uz clears the dead mount).  Then:
#   - fsck.bringfs on the crashed image (if built) must exit 0;
#   - the image must mount again;
#   - kill_torture check: every acknowledged byte and name is there, no
#     state older than acknowledged, no garbage;
#   - every earlier round's directory on this image is byte for byte what
#     it was when it was checked (a later crash and mount must never
#     change replayed history).
# A fresh image every 10 rounds (the log grows: mount replays all of it).
#
#   test_kill.sh MKFS BRINGFS LOGCUT KILL_TORTURE [--rounds N] [--seed S]
#
# Default 50 rounds (~2-3 min).  Exit 77 when FUSE or the binaries are
# missing.
CR_DEFAULT_ROUNDS=50
. "$(dirname "$0")/common.sh"
cr_init "$@"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-2G}
br_setup "$CR_MKFS_ARG" "$CR_FS_ARG"

PER_IMAGE=${CR_PER_IMAGE:-10}
declare -A SUMS=()	# round dir -> tree digest, for rounds on this image
killed_mid=0

for round in $(seq 1 "$CR_ROUNDS"); do
	rseed=$((CR_SEED * 1000 + round))
	if [ "$round" -gt 1 ] && [ $(((round - 1) % PER_IMAGE)) = 0 ]; then
		br_unmount || br_die "clean unmount before the new image failed"
		cr_wait_unlocked "$BR_IMG" || br_die "image still locked after a clean unmount"
		"$BR_MKFS" -f -q -s "$BR_IMAGE_SIZE" "$BR_IMG" >"$BR_TMP/mkfs.log" 2>&1 ||
			br_die "mkfs failed: $(cat "$BR_TMP/mkfs.log")"
		br_mount
		SUMS=()
	fi
	d=$BR_MNT/r$round
	mkdir "$d" || br_die "round $round: mkdir $d"
	sync "$BR_MNT" || br_die "round $round: fsync of the root directory failed"
	delay_ms=$(cr_rand "$rseed" 50 1200)
	"$CR_KT" run --dir "$d" --journal "$BR_TMP/j.$round" --seed "$rseed" --workers 2 \
		--time-ms 20000 >"$BR_TMP/run.$round" 2>&1 &
	wpid=$!
	sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	if ! kill -0 $wpid 2>/dev/null; then
		wait $wpid
		br_failed "round $round (seed $rseed): the workload ended before the kill: $(tail -n 3 "$BR_TMP/run.$round" | tr '\n' ' ')"
		cr_kill_daemon || br_die "could not clear the mount"
		br_mount
		continue
	fi
	cr_kill_daemon || br_die "round $round: could not clear the killed mount"
	for i in $(seq 1 200); do
		kill -0 $wpid 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 $wpid 2>/dev/null; then
		kill -KILL $wpid 2>/dev/null
		br_failed "round $round (seed $rseed): workload still running 20 s after the daemon died"
	fi
	wait $wpid
	wrc=$?
	case $wrc in
	3) killed_mid=$((killed_mid + 1)) ;;
	2|4) br_failed "round $round (seed $rseed): workload saw wrong data or an unexpected error while the daemon was alive"
	     sed 's/^/    /' "$BR_TMP/run.$round" | head -n 20 ;;
	*) br_failed "round $round (seed $rseed): workload exit $wrc"
	   sed 's/^/    /' "$BR_TMP/run.$round" | head -n 20 ;;
	esac
	cr_fsck "crashed image, round $round"
	br_mount
	if out=$("$CR_KT" check --dir "$d" --journal "$BR_TMP/j.$round" --workers 2 2>&1); then
		BR_PASS=$((BR_PASS + 1))
		acks=$(printf '%s\n' "$out" | grep -o 'acks counted: [0-9]* data, [0-9]* dir' | tr '\n' ';')
		echo "ok   - round $round (seed $rseed, kill after ${delay_ms} ms): acknowledged state intact ($acks)"
	else
		br_failed "round $round (seed $rseed, kill after ${delay_ms} ms): acknowledged state lost or damaged"
		printf '%s\n' "$out" | head -n 30 | sed 's/^/    /'
		[ "${BR_KEEP:-0}" = 1 ] && { echo "journal: $BR_TMP/j.$round.*"; }
	fi
	for old in "${!SUMS[@]}"; do
		now=$(cr_tree_sum "$old")
		if [ "$now" != "${SUMS[$old]}" ]; then
			br_failed "round $round (seed $rseed): ${old#"$BR_MNT"/} changed after a later crash and mount"
		fi
	done
	SUMS[$d]=$(cr_tree_sum "$d")
done
br_eq "every round killed the workload mid-run" "$CR_ROUNDS" "$killed_mid"
br_finish
