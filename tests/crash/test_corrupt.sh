#!/bin/bash
# Damaged images: a populated image (40 files of 0..300 KiB in a few
# directories, written through a mount without checkpoints, one fsync per
# file, then SIGKILL: all of it a log tail) gets, per case,
# random bit flips or a zeroed 4 KiB block in the primary superblock, the
# backup superblock, both, a checkpoint slot (the older one or, every other
# time, the newest: the clean unmount's checkpoint), a log buffer's header
# block or a random block inside a log buffer.  Then `bringfs -f` runs under a 20 s
# limit.  Always required:
#   - no signal death (exit >= 128) and no hang (mounted or exited in 20 s);
#   - a refusal is a non-zero exit with exactly one stderr line
#     "bringfs: error: ...";
#   - a mount serves every file it shows: readable in 20 s, content a
#     prefix of the original (a log cut short keeps each file's data up to
#     some point: data records are replayed in order), the daemon survives
#     the reads and unmounts cleanly (exit 0).
# Required per region (what the format promises):
#   - primary or backup superblock alone damaged: mounts, every file whole
#     (the other copy is valid);
#   - a checkpoint slot damaged: mounts, every file whole (the older slot:
#     ignored; the newest: mount falls back to the older one and rolls
#     forward over the log, which nothing was deleted from);
#   - both superblocks zeroed: refused;
#   - log damage: mounts (superblock and slot are intact; replay stops at
#     the damaged buffer).
# fsck.bringfs (if built), on every image that mounted: -y exits 0 or 1
# (damaged superblock copies and slots are repaired), then -n exits 0.
#
#   test_corrupt.sh MKFS BRINGFS LOGCUT KILL_TORTURE [--rounds N] [--seed S]
#   (N cases, default 36)
CR_DEFAULT_ROUNDS=36
. "$(dirname "$0")/common.sh"
cr_init "$@"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-256M}
# Populated without checkpoints and ended by SIGKILL: the whole population
# is a log tail, so log damage is met by replay (which stops there), not
# hidden behind a checkpoint (file data is not checksummed on read).
BR_MOUNT_OPTS="ckpt_bytes=0,ckpt_secs=0"
br_setup "$CR_MKFS_ARG" "$CR_FS_ARG"

# ---- the populated image --------------------------------------------------------
S=$BR_TMP/src
mkdir -p "$S/a/b" "$S/c"
i=0
for sz in $(awk -v s="$CR_SEED" 'BEGIN { srand(s); for (i = 0; i < 40; i++) print int(rand() * rand() * 300 * 1024) }'); do
	d=$S; case $((i % 3)) in 1) d=$S/a/b ;; 2) d=$S/c ;; esac
	head -c "$sz" /dev/urandom >"$d/file$i"
	i=$((i + 1))
done
(cd "$S" && find . -type f | LC_ALL=C sort) >"$BR_TMP/files"
# one fsync per file: many log buffers, so log damage hits files in the middle
mkdir -p "$BR_MNT/a/b" "$BR_MNT/c"
while read -r f; do
	cp "$S/$f" "$BR_MNT/$f" && sync "$BR_MNT/$f" || br_die "populating the image ($f)"
done <"$BR_TMP/files"
sync "$BR_MNT" "$BR_MNT/a" "$BR_MNT/a/b" "$BR_MNT/c" || br_die "fsync of the directories"
cr_kill_daemon || br_die "could not clear the killed mount"
cp --sparse=always "$BR_IMG" "$BR_TMP/pristine"
"$CR_LOGCUT" list "$BR_TMP/pristine" >"$BR_TMP/list" || br_die "logcut list"
nbuf=$(sed -n 's/.* buffers=\([0-9]*\) .*/\1/p' "$BR_TMP/list")
# The slot cases start from the same image after a clean mount + unmount:
# its checkpoint in the other slot.
BR_MOUNT_OPTS=""
br_mount
br_unmount || br_die "clean unmount of the populated image"
cp --sparse=always "$BR_IMG" "$BR_TMP/pristine.ckpt"
"$CR_LOGCUT" list "$BR_TMP/pristine.ckpt" >"$BR_TMP/list.ckpt" || br_die "logcut list"
[ "$(sed -n 's/.* gen=\([0-9]*\) .*/\1/p' "$BR_TMP/list.ckpt")" -ge 2 ] ||
	br_die "no checkpoint after a clean unmount: $(tail -n 1 "$BR_TMP/list.ckpt")"
size=$(stat -c %s "$BR_IMG")
backup=$(( size / 4096 * 4096 - 4096 ))
newest_slot=$(sed -n 's/.* slot=\([01]\) .*/\1/p' "$BR_TMP/list.ckpt")
older_slot=$((newest_slot ^ 1))
br_log "populated: $(wc -l <"$BR_TMP/files") files, $nbuf log buffers; after a clean unmount the newest checkpoint is in slot $newest_slot"
[ "$nbuf" -ge 2 ] || br_die "too few log buffers"

flip() { # FILE BYTE-OFFSET MASK
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ $3)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
zero_block() { dd if=/dev/zero of="$1" bs=4096 seek=$(($2 / 4096)) count=1 conv=notrunc status=none; }
# rnd SEED N: N random integers in [0, 2^31)
rnd() { awk -v s="$1" -v n="$2" 'BEGIN { srand(s); for (i = 0; i < n; i++) print int(rand() * 2147483647) }'; }

# try_mount: 0 mounted, 1 exited (refused), 2 hang (killed)
try_mount() {
	rm -f "$BR_TMP/daemon.pid" "$BR_TMP/daemon.rc"
	(
		"$BR_BRINGFS" -f "$BR_IMG" "$BR_MNT" </dev/null >"$BR_TMP/try.out" 2>"$BR_TMP/try.err" &
		echo $! >"$BR_TMP/daemon.pid"
		wait $!
		echo $? >"$BR_TMP/daemon.rc"
	) </dev/null >/dev/null 2>&1 &
	local i
	for i in $(seq 1 200); do
		if br_is_mounted; then BR_MOUNTED=1; return 0; fi
		[ -e "$BR_TMP/daemon.rc" ] && return 1
		sleep 0.1
	done
	kill -KILL "$(br_daemon_pid)" 2>/dev/null
	fusermount3 -uz "$BR_MNT" 2>/dev/null
	return 2
}

# check_files WHOLE: every file shown reads in time and is a prefix of the
# original; WHOLE=1: every file present and complete.
check_files() {
	local f n=0 missing=0 short=0 errs=0 sz
	while read -r f; do
		if [ ! -e "$BR_MNT/$f" ]; then missing=$((missing + 1)); continue; fi
		n=$((n + 1))
		if ! timeout 20 cat "$BR_MNT/$f" >"$BR_TMP/got" 2>/dev/null; then
			errs=$((errs + 1)); continue
		fi
		sz=$(stat -c %s "$BR_TMP/got")
		if ! cmp -s -n "$sz" "$BR_TMP/got" "$S/$f" || [ "$sz" -gt "$(stat -c %s "$S/$f")" ]; then
			errs=$((errs + 1)); echo "    $f: content is not a prefix of the original" >&2
		elif [ "$sz" != "$(stat -c %s "$S/$f")" ]; then
			short=$((short + 1))
		fi
	done <"$BR_TMP/files"
	echo "$n shown, $missing missing, $short shortened, $errs bad"
	[ $errs = 0 ] || return 1
	[ "$1" = 1 ] && [ $((missing + short)) != 0 ] && return 1
	return 0
}

for c in $(seq 1 "$CR_ROUNDS"); do
	s=$((CR_SEED * 1000 + c))
	mapfile -t R < <(rnd "$s" 12)
	region=$(( (c - 1) % 6 ))
	if [ $region = 3 ]; then cp --sparse=always "$BR_TMP/pristine.ckpt" "$BR_IMG"
	else cp --sparse=always "$BR_TMP/pristine" "$BR_IMG"; fi
	zero=$(( R[0] % 2 ))
	what=""
	case $region in
	0|1|2)	# superblock(s): flips inside the 512 bytes the CRC covers
		offs=""
		[ $region != 1 ] && offs="0"
		[ $region != 0 ] && offs="$offs $backup"
		for o in $offs; do
			if [ $zero = 1 ]; then zero_block "$BR_IMG" "$o"
			else for j in 1 2 3; do flip "$BR_IMG" $((o + R[j] % 512)) $((1 << (R[j + 3] % 8))); done; fi
		done
		what="superblock $(case $region in 0) echo primary;; 1) echo backup;; 2) echo 'primary+backup';; esac)" ;;
	3)	sl=$([ $(( (c / 6) % 2 )) = 0 ] && echo "$older_slot" || echo "$newest_slot")
		if [ $zero = 1 ]; then zero_block "$BR_IMG" $((4096 * (1 + sl)))
		else flip "$BR_IMG" $((4096 * (1 + sl) + R[1] % 64)) $((1 << (R[2] % 8))); fi
		what="checkpoint slot $sl ($([ "$sl" = "$newest_slot" ] && echo newest || echo older))" ;;
	4)	k=$(( R[1] % nbuf ))
		addr=$(awk -v k="$k" '$1 == k { sub("addr=", "", $2); print $2 }' "$BR_TMP/list")
		if [ $zero = 1 ]; then zero_block "$BR_IMG" "$addr"
		else flip "$BR_IMG" $((addr + R[2] % 48)) $((1 << (R[3] % 8))); fi
		what="header block of log buffer $k" ;;
	5)	k=$(( R[1] % nbuf ))
		read -r addr span < <(awk -v k="$k" '$1 == k { sub("addr=", "", $2); sub("span=", "", $4); print $2, $4 }' "$BR_TMP/list")
		blk=$(( R[2] % (span / 4096) ))
		if [ $zero = 1 ]; then zero_block "$BR_IMG" $((addr + blk * 4096))
		else for j in 3 4 5 6; do flip "$BR_IMG" $((addr + blk * 4096 + R[j] % 4096)) $((1 << (R[j + 4] % 8))); done; fi
		what="block $blk of log buffer $k" ;;
	esac
	how=$([ $zero = 1 ] && echo "zeroed 4 KiB" || echo "bit flips")
	label="case $c (seed $s): $how in $what"
	try_mount
	r=$?
	if [ $r = 2 ]; then
		br_failed "$label: bringfs neither mounted nor exited within 20 s (hang)"
		continue
	fi
	if [ $r = 1 ]; then
		rc=$(cat "$BR_TMP/daemon.rc")
		nl=$(wc -l <"$BR_TMP/try.err")
		msg=$(head -n 1 "$BR_TMP/try.err")
		if [ "$rc" -ge 128 ]; then
			br_failed "$label: bringfs died with signal $((rc - 128)): $msg"
		elif [ "$rc" = 0 ]; then
			br_failed "$label: bringfs exited 0 without mounting"
		elif [ "$nl" != 1 ] || [ "${msg#bringfs: error: }" = "$msg" ]; then
			br_failed "$label: refusal (exit $rc) is not one 'bringfs: error:' line:"
			sed 's/^/    /' "$BR_TMP/try.err" | head -n 5
		elif [ $region = 0 ] || [ $region = 1 ] || [ $region -ge 3 ]; then
			br_failed "$label: refused although the format says it must mount: $msg"
		else
			br_pass "$label: refused: $msg"
		fi
		continue
	fi
	# mounted
	if [ $region = 2 ] && [ $zero = 1 ]; then
		br_failed "$label: mounted with both superblocks zeroed"
	fi
	whole=0
	{ [ $region -le 1 ] || [ $region = 3 ]; } && whole=1
	[ $region = 2 ] && whole=1	# if it mounts, a superblock copy was intact
	if out=$(check_files $whole 2>"$BR_TMP/check.err"); then
		if br_daemon_alive; then
			br_pass "$label: mounted, files intact or prefixes ($out)"
		else
			br_failed "$label: the daemon died while the files were read"
		fi
	else
		br_failed "$label: mounted but files are wrong ($out)"
		head -n 5 "$BR_TMP/check.err"
	fi
	if br_unmount; then
		cr_fsck_repair "$label"
	else
		br_failed "$label: unclean unmount"
		cr_kill_daemon
	fi
done
br_finish
