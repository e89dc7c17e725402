#!/bin/bash
# SIGKILL during heavy cleaning (issue 6): a small image (256 MiB, 1 MiB
# segments of two 512 KiB buffers: 254 log segments) mounted with
# -o cleaner=on and a checkpoint every second (BR_MOUNT_OPTS overrides)
# holds ~72 % cold ballast (4 files of 46 MiB, a copy of each kept
# outside the filesystem).  The ballast is written interleaved with
# scratch data that is then deleted, so from the start nearly every
# segment is partly dead and free segments are near the cleaner's
# threshold.  Each round, on the same image:
#   - kill_torture run (2 workers: creates, appends, overwrites, renames,
#     unlinks, fsyncs; its journal outside the filesystem records every
#     acknowledged state) in a new directory r<round>;
#   - a ballast writer: batches of 8 random overwrites (4-128 KiB, whole
#     4 KiB blocks; dd conv=notrunc) of one ballast file, then fdatasync;
#     the outside copy takes a batch only after its fdatasync returned 0,
#     the batch in flight is recorded (pending) before its first write;
#   - the directory of the round before last is deleted (more dead data);
#   - after a random 1-4 s the cleaner's counters are read from
#     user.bringfs.stats and the daemon gets SIGKILL.
# Then:
#   - fsck.bringfs on the crashed image (if built) must exit 0;
#   - the image must mount again;
#   - kill_torture check: every acknowledged byte and name is there;
#   - every ballast file equals its outside copy, except that each 4 KiB
#     block of the unacknowledged batch may hold its old or its new bytes
#     (nothing else);
#   - the previous round's directory is byte for byte what it was when it
#     was checked (a crash during cleaning must not change history).
# At the end the cleaner must have worked: passes and moved bytes summed
# over the rounds (the counters start at 0 with each mount; the fill's
# share is left out) must be > 0, and at least half of the rounds must
# have seen a pass before their kill, else the test proved nothing and
# fails.
#
#   test_kill_clean.sh MKFS BRINGFS LOGCUT KILL_TORTURE [--rounds N] [--seed S]
#
# Default 20 rounds (~1.5-2 min on 2 cores: ~10 s of fill, ~4.5 s per
# round).  Exit 77 when FUSE, getfattr or the binaries are missing.
CR_DEFAULT_ROUNDS=20
. "$(dirname "$0")/common.sh"
cr_init "$@"
command -v getfattr >/dev/null || br_skip "getfattr not installed (package attr)"

NB=4			# ballast files
BMIB=46			# MiB each: 184 MiB, 72 % of the 254 MiB of log
BLOCKS=$((BMIB * 256))	# 4 KiB blocks per ballast file
EXTENTS=8		# overwrites per ballast batch (one fdatasync)
BR_IMAGE_SIZE=256M
BR_MOUNT_OPTS=${BR_MOUNT_OPTS:-cleaner=on,ckpt_secs=1,ckpt_bytes=16M}

# br_setup formats with its own mkfs call; reformat with the geometry
# spelled out (mkfs's defaults for this size may change) before the
# first real use (the first mount saw an empty image).
br_setup "$CR_MKFS_ARG" "$CR_FS_ARG"
# On an early exit, kill_torture's workers (children of $wpid, each with
# its cwd in the mount) go first, then lib.sh's cleanup (it TERMs
# $BR_BG_PIDS, unmounts, removes $BR_TMP).
wpid=
kc_cleanup() {
	local rc=$?
	[ -n "$wpid" ] && pkill -KILL -P "$wpid" 2>/dev/null
	(exit $rc)
	br_cleanup
}
trap kc_cleanup EXIT
br_unmount || br_die "unmount after setup failed"
cr_wait_unlocked "$BR_IMG" || br_die "image still locked after a clean unmount"
"$BR_MKFS" -f -q -s "$BR_IMAGE_SIZE" -b 512K -S 1M "$BR_IMG" >"$BR_TMP/mkfs.log" 2>&1 ||
	br_die "mkfs -b 512K -S 1M failed: $(cat "$BR_TMP/mkfs.log")"
br_mount
br_log "mounted with -o $BR_MOUNT_OPTS, 256 MiB, 1 MiB segments, 512 KiB buffers"

SHADOW=$BR_TMP/shadow	# the ballast as acknowledged (outside the fs)
BW=$BR_TMP/bw		# ballast writer's batch and pending list
mkdir -p "$SHADOW" "$BW"

# stats_now: the root's stats xattr; stat_of TEXT NAME: one value ("" if absent).
stats_now() {
	getfattr --only-values -n user.bringfs.stats "$BR_MNT" 2>/dev/null
}
stat_of() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

# ---- ballast ------------------------------------------------------------
# Chunks of 512 KiB of each file, round robin over the files, each
# followed by 384 KiB of scratch in a file per round robin pass; the
# scratch of four passes back is deleted as the fill goes on.  Ballast
# plus scratch exceed the log, so the cleaner already works during the
# fill, and every segment ends up ~40 % dead: it starts the rounds with
# free segments at its threshold and cheap victims.
br_log "writing ${NB}x${BMIB} MiB of ballast interleaved with scratch"
mkdir "$BR_MNT/ballast" || br_die "mkdir ballast"
for f in $(seq 0 $((NB - 1))); do
	head -c $((BMIB << 20)) /dev/urandom >"$SHADOW/b$f" || br_die "shadow b$f"
done
for j in $(seq 0 $((BMIB * 2 - 1))); do
	for f in $(seq 0 $((NB - 1))); do
		dd if="$SHADOW/b$f" of="$BR_MNT/ballast/b$f" bs=512K skip="$j" seek="$j" \
			count=1 conv=notrunc status=none ||
			br_die "ballast write b$f chunk $j: $(stats_now | tr '\n' ' ')"
		head -c 384K /dev/urandom >>"$BR_MNT/scratch.$j" ||
			br_die "scratch write (chunk $j): $(stats_now | tr '\n' ' ')"
	done
	rm -f "$BR_MNT/scratch.$((j - 4))"
done
rm -f "$BR_MNT"/scratch.* || br_die "rm scratch"
sync -f "$BR_MNT" || br_die "syncfs after the ballast"
for f in $(seq 0 $((NB - 1))); do
	cmp -s "$BR_MNT/ballast/b$f" "$SHADOW/b$f" || br_die "ballast b$f reads back wrong before any crash"
done
st=$(stats_now)
[ "$(stat_of "$st" cleaner)" = on ] ||
	br_die "the cleaner is not on (stats: $(printf '%s' "$st" | tr '\n' ' '))"
# the rounds count only what the cleaner did after the fill
base_runs=$(stat_of "$st" cleaner_runs) base_segs=$(stat_of "$st" cleaned_segments)
base_moved=$(stat_of "$st" moved_bytes)
br_log "after the fill: $(stat_of "$st" free_segments)/$(stat_of "$st" total_segments)" \
	"segments free, live ratio $(stat_of "$st" live_ratio); the cleaner: $base_runs" \
	"passes, $((base_moved >> 20)) MiB moved (not counted below)"

# ballast_writer SEED: batches of EXTENTS random, non-overlapping
# overwrites of 4 KiB .. 128 KiB (whole 4 KiB blocks) of one ballast
# file, then fdatasync, until a write or the fdatasync fails.  The batch
# (its bytes in $BW/batch, its extents in $BW/pending: "file" then
# "block count" pairs) is on the host disk before its first write; the
# outside copy takes it only after the fdatasync returned 0.  Exit 3 when
# it failed as expected once the daemon is gone (ENOTCONN, ECONNABORTED,
# EIO, or ENOENT after the lazy unmount), 4 otherwise.
ballast_writer() {
	local f i n b blk off err batches=0
	local -a ext
	local -A used
	RANDOM=$1
	fail() {
		echo "ballast writer: $1: $err"
		case $err in
		*"Transport endpoint"*|*"connection abort"*|*"Input/output"*|*"No such file"*)
			echo "ballast writer: stopped after $batches batches"; exit 3 ;;
		esac
		exit 4
	}
	while :; do
		f=$((RANDOM % NB))
		ext=()
		used=()
		n=0
		while [ ${#ext[@]} -lt $((2 * EXTENTS)) ]; do
			b=$((1 + RANDOM % 32))
			blk=$(( (RANDOM * 32768 + RANDOM) % (BLOCKS - b + 1) ))
			[ -n "${used[$((blk / 32))]:-}${used[$(((blk + b - 1) / 32))]:-}" ] && continue
			used[$((blk / 32))]=1 used[$(((blk + b - 1) / 32))]=1
			ext+=("$blk" "$b")
			n=$((n + b))
		done
		head -c $((n * 4096)) /dev/urandom >"$BW/batch" || exit 2
		# the intent, before the first write reaches the filesystem
		printf '%s\n' "$f ${ext[*]}" >"$BW/pending.tmp" && mv "$BW/pending.tmp" "$BW/pending" || exit 2
		off=0
		for ((i = 0; i < ${#ext[@]}; i += 2)); do
			err=$(dd if="$BW/batch" of="$BR_MNT/ballast/b$f" bs=4096 skip="$off" \
				seek="${ext[i]}" count="${ext[i + 1]}" conv=notrunc status=none 2>&1) ||
				fail "write b$f blocks ${ext[i]}+${ext[i + 1]}"
			off=$((off + ext[i + 1]))
		done
		err=$(sync -d "$BR_MNT/ballast/b$f" 2>&1) || fail "fdatasync b$f"
		# acknowledged: the outside copy takes the batch, then the
		# intent goes
		off=0
		for ((i = 0; i < ${#ext[@]}; i += 2)); do
			dd if="$BW/batch" of="$SHADOW/b$f" bs=4096 skip="$off" seek="${ext[i]}" \
				count="${ext[i + 1]}" conv=notrunc status=none || exit 2
			off=$((off + ext[i + 1]))
		done
		rm "$BW/pending" || exit 2
		batches=$((batches + 1))
	done
}

# blocks FILE FIRST COUNT: COUNT 4 KiB blocks of FILE from block FIRST.
blocks() { dd if="$1" bs=4096 skip="$2" count="$3" status=none; }

# ballast_check DESC: every file equals its outside copy, except that
# each 4 KiB block of the unacknowledged batch may hold its new bytes
# instead of the old ones (the copy then takes them).
ballast_check() {
	local f i j rest ok=1 newb=0 oldb=0 line off=0
	local -a ext
	if [ -e "$BW/pending" ]; then
		read -r f rest <"$BW/pending"
		read -r -a ext <<<"$rest"
		for ((i = 0; i < ${#ext[@]}; i += 2)); do
			blocks "$BR_MNT/ballast/b$f" "${ext[i]}" "${ext[i + 1]}" >"$BW/got"
			blocks "$BW/batch" "$off" "${ext[i + 1]}" >"$BW/new"
			if cmp -s "$BW/got" "$BW/new"; then
				newb=$((newb + ext[i + 1]))
			elif cmp -s "$BW/got" <(blocks "$SHADOW/b$f" "${ext[i]}" "${ext[i + 1]}"); then
				oldb=$((oldb + ext[i + 1]))
				: >"$BW/new"	# nothing to take
			else	# torn: block by block
				for ((j = 0; j < ext[i + 1]; j++)); do
					if cmp -s <(blocks "$BW/got" "$j" 1) <(blocks "$BW/new" "$j" 1); then
						dd if="$BW/new" of="$SHADOW/b$f" bs=4096 skip="$j" \
							seek=$((ext[i] + j)) count=1 conv=notrunc status=none
						newb=$((newb + 1))
					elif cmp -s <(blocks "$BW/got" "$j" 1) <(blocks "$SHADOW/b$f" $((ext[i] + j)) 1); then
						oldb=$((oldb + 1))
					else
						br_failed "$1: b$f block $((ext[i] + j)) (unacknowledged write) holds neither its old nor its new bytes"
						ok=0
					fi
				done
				: >"$BW/new"
			fi
			[ -s "$BW/new" ] && dd if="$BW/new" of="$SHADOW/b$f" bs=4096 seek="${ext[i]}" \
				conv=notrunc status=none
			off=$((off + ext[i + 1]))
		done
		rm "$BW/pending"
	fi
	for f in $(seq 0 $((NB - 1))); do
		if ! cmp -s "$BR_MNT/ballast/b$f" "$SHADOW/b$f"; then
			ok=0
			line=$(cmp -l "$BR_MNT/ballast/b$f" "$SHADOW/b$f" 2>&1 |
				awk '/^[0-9]/ { b = int(($1 - 1) / 4096); if (!(b in s)) { s[b]; n++; if (n <= 8) l = l " " b } }
				     !/^[0-9]/ { print; exit } END { printf "%d blocks differ:%s\n", n, l }')
			br_failed "$1: ballast b$f differs from what was acknowledged ($line)"
		fi
	done
	[ $ok = 1 ] && br_pass "$1: ballast intact (${NB}x${BMIB} MiB; unacknowledged batch: $newb blocks new, $oldb old)"
}

# ---- rounds ---------------------------------------------------------------
declare -A SUMS=()	# round dir -> tree digest when it was checked
killed_mid=0
clean_rounds=0		# rounds whose mount had cleaned before the kill
tot_runs=0 tot_segs=0 tot_moved=0

for round in $(seq 1 "$CR_ROUNDS"); do
	rseed=$((CR_SEED * 1000 + round))
	d=$BR_MNT/r$round
	mkdir "$d" || br_die "round $round: mkdir $d"
	sync "$BR_MNT" || br_die "round $round: fsync of the root directory failed"
	delay_ms=$(cr_rand "$rseed" 1000 4000)
	"$CR_KT" run --dir "$d" --journal "$BR_TMP/j.$round" --seed "$rseed" --workers 2 \
		--time-ms 30000 >"$BR_TMP/run.$round" 2>&1 &
	wpid=$!
	ballast_writer "$rseed" >"$BR_TMP/bw.$round" 2>&1 &
	bpid=$!
	BR_BG_PIDS="$wpid $bpid"
	old=$BR_MNT/r$((round - 2))
	if [ -d "$old" ]; then
		rm -rf "$old" || br_failed "round $round: rm -rf ${old#"$BR_MNT"/}"
		unset "SUMS[$old]"
	fi
	sleep "$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	st=$(stats_now)
	r=$(stat_of "$st" cleaner_runs) s=$(stat_of "$st" cleaned_segments) m=$(stat_of "$st" moved_bytes)
	if [ "$round" = 1 ]; then	# the fill's share (same mount)
		r=$((${r:-0} - base_runs)) s=$((${s:-0} - base_segs)) m=$((${m:-0} - base_moved))
	fi
	tot_runs=$((tot_runs + ${r:-0})) tot_segs=$((tot_segs + ${s:-0})) tot_moved=$((tot_moved + ${m:-0}))
	[ "${r:-0}" -gt 0 ] && clean_rounds=$((clean_rounds + 1))
	cinfo="this mount: ${r:-?} passes, ${s:-?} segments, $(( ${m:-0} >> 20 )) MiB moved; $(stat_of "$st" free_segments) free"
	for p in $wpid $bpid; do
		kill -0 "$p" 2>/dev/null && continue
		br_failed "round $round (seed $rseed): $([ "$p" = "$wpid" ] && echo kill_torture || echo 'the ballast writer') ended before the kill"
	done
	cr_kill_daemon || br_die "round $round: could not clear the killed mount"
	for i in $(seq 1 200); do
		kill -0 $wpid 2>/dev/null || kill -0 $bpid 2>/dev/null || break
		sleep 0.1
	done
	for p in $wpid $bpid; do
		if kill -0 "$p" 2>/dev/null; then
			kill -KILL "$p" 2>/dev/null
			br_failed "round $round (seed $rseed): pid $p still running 20 s after the daemon died"
		fi
	done
	wait $wpid
	wrc=$?
	wait $bpid
	brc=$?
	BR_BG_PIDS='' wpid=''
	case $wrc in
	3) killed_mid=$((killed_mid + 1)) ;;
	2|4) br_failed "round $round (seed $rseed): workload saw wrong data or an unexpected error while the daemon was alive"
	     sed 's/^/    /' "$BR_TMP/run.$round" | head -n 20 ;;
	*) br_failed "round $round (seed $rseed): workload exit $wrc"
	   sed 's/^/    /' "$BR_TMP/run.$round" | head -n 20 ;;
	esac
	if [ $brc != 3 ]; then
		br_failed "round $round (seed $rseed): ballast writer exit $brc"
		sed 's/^/    /' "$BR_TMP/bw.$round" | head -n 10
	fi
	cr_fsck "crashed image, round $round"
	br_mount
	if out=$("$CR_KT" check --dir "$d" --journal "$BR_TMP/j.$round" --workers 2 2>&1); then
		acks=$(printf '%s\n' "$out" | grep -o 'acks counted: [0-9]* data, [0-9]* dir' | tr '\n' ';')
		br_pass "round $round (seed $rseed, kill after ${delay_ms} ms; $cinfo): acknowledged state intact ($acks $(tail -n 1 "$BR_TMP/bw.$round" | grep -o '[0-9]* batches') of ballast)"
	else
		br_failed "round $round (seed $rseed, kill after ${delay_ms} ms; $cinfo): acknowledged state lost or damaged"
		printf '%s\n' "$out" | head -n 30 | sed 's/^/    /'
	fi
	ballast_check "round $round"
	for o in "${!SUMS[@]}"; do
		[ "$(cr_tree_sum "$o")" = "${SUMS[$o]}" ] ||
			br_failed "round $round (seed $rseed): ${o#"$BR_MNT"/} changed after a later crash and mount"
	done
	SUMS[$d]=$(cr_tree_sum "$d")
done

st=$(stats_now)
r=$(stat_of "$st" cleaner_runs) s=$(stat_of "$st" cleaned_segments) m=$(stat_of "$st" moved_bytes)
tot_runs=$((tot_runs + ${r:-0})) tot_segs=$((tot_segs + ${s:-0})) tot_moved=$((tot_moved + ${m:-0}))
br_log "cleaner over all rounds: $tot_runs passes, $tot_segs segments cleaned, $((tot_moved >> 20)) MiB moved"
br_eq "every round killed the workload mid-run" "$CR_ROUNDS" "$killed_mid"
if [ "$tot_runs" -gt 0 ] && [ "$tot_moved" -gt 0 ]; then
	br_pass "the cleaner worked during the rounds ($tot_runs passes, $tot_segs segments, $tot_moved bytes moved)"
else
	br_failed "the cleaner never moved anything ($tot_runs passes, $tot_moved bytes moved): the test proved nothing"
fi
# kills must fall into cleaning, not only into one early burst of it
if [ $((2 * clean_rounds)) -ge "$CR_ROUNDS" ]; then
	br_pass "the cleaner ran in $clean_rounds of $CR_ROUNDS rounds before the kill"
else
	br_failed "the cleaner ran in only $clean_rounds of $CR_ROUNDS rounds before the kill: most kills did not hit a cleaning filesystem"
fi
br_unmount || br_failed "clean unmount at the end"
cr_wait_unlocked "$BR_IMG" && cr_fsck "image after the last clean unmount"
br_finish
