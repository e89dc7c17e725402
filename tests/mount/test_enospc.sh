#!/bin/bash
# A full filesystem: df's free space is what can be written, ENOSPC comes
# then and only then, and deleting, truncating and overwriting still work
# and give the space back.  Mounted with -o cleaner=on: after deleting
# every other small file the free space df promises lies in partly dead
# segments, and only the cleaner can hand it out.
#
# "Within tolerance": 2 % of the promise plus one segment (the log's
# current segment's tail, metadata records and the cleaner's last partly
# used head segment are not data).  No timing is asserted.
#
#   test_enospc.sh [MKFS BRINGFS]
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-256M}
BR_MOUNT_OPTS=${BR_MOUNT_OPTS:-cleaner=on}
br_setup "$1" "$2"
[ -n "${BR_TEST_NOMOUNT_DIR:-}" ] && br_skip "needs a bringfs mount (ENOSPC of a small image)"
command -v getfattr >/dev/null || br_skip "getfattr (package attr) not installed"

avail() { sync -f "$BR_MNT"; df -B1 --output=avail "$BR_MNT" | tail -n 1; }
stat_of() { getfattr --only-values -n user.bringfs.stats "$BR_MNT" 2>/dev/null | sed -n "s/^$1 //p"; }
size_of() { stat -c %s "$1"; }
seg=$(( $(df -B1 --output=size "$BR_MNT" | tail -n 1) / $(stat_of total_segments) ))
br_log "segment size $seg"

# br_near DESC PROMISED GOT: |PROMISED - GOT| <= 2 % of PROMISED + seg
br_near() {
	local d=$(( $2 > $3 ? $2 - $3 : $3 - $2 )) tol=$(( $2 / 50 + seg ))
	if [ "$d" -le "$tol" ]; then
		br_pass "$1 (promised $2, got $3)"
	else
		br_failed "$1: promised $2, got $3 (off by $d, tolerance $tol)"
	fi
}

# fill NAME: dd until it fails; it must fail with ENOSPC
fill() {
	local err
	err=$(dd if=/dev/zero of="$BR_MNT/$1" bs=1M conv=fsync 2>&1 >/dev/null)
	case $err in
	*"No space left"*) return 0 ;;
	*) echo "dd of $1 did not end with ENOSPC: $err" >&2; return 1 ;;
	esac
}

# enospc DESC CMD [ARGS...]: CMD must fail, with ENOSPC
enospc() {
	local desc=$1 err; shift
	if err=$("$@" 2>&1); then
		br_failed "$desc: succeeded on the full fs"
		return
	fi
	case $err in
	*"No space left"*) br_pass "$desc: ENOSPC" ;;
	*) br_failed "$desc: $err" ;;
	esac
}

# --- 1. from empty: what df promised is what dd writes -----------------------
a0=$(avail)
br_log "empty: df avail $a0"
dd if=/dev/zero of="$BR_MNT/a" bs=1M count=$(( a0 * 2 / 5 / 1048576 )) conv=fsync status=none
br_check "fill to ENOSPC" fill b
w=$(( $(size_of "$BR_MNT/a") + $(size_of "$BR_MNT/b") ))
br_near "bytes written until ENOSPC = df avail of the empty fs" "$a0" "$w"
full=$(avail)
br_check "df avail of the full fs is below one segment ($full)" test "$full" -lt "$seg"
br_check_fails "a write to the full fs fails" \
	dd if=/dev/zero of="$BR_MNT/c" bs=1M count=1 conv=fsync status=none
# new names too: the reserve is for what gives space back
enospc "touch of a new file on the full fs" touch "$BR_MNT/e"
enospc "mkdir on the full fs" mkdir "$BR_MNT/e"
enospc "ln -s on the full fs" ln -s b "$BR_MNT/e"

# --- 2. a full fs truncates, deletes and overwrites --------------------------
br_check "truncate on the full fs" truncate -s 1M "$BR_MNT/b"
br_check "rm on the full fs" rm "$BR_MNT/a"
br_check "touch of a new file after the delete" touch "$BR_MNT/e"
br_check "rm of it" rm "$BR_MNT/e"
a1=$(avail)
br_near "df avail after truncate + rm = empty fs less the 1 MiB kept" $(( a0 - 1048576 )) "$a1"
br_check "overwrite after the delete" \
	dd if=/dev/urandom of="$BR_MNT/b" bs=1M count=1 conv=notrunc,fsync status=none

# --- 3. 512 KiB files to ENOSPC, every other one deleted -----------------------
mkdir "$BR_MNT/d"
n=0
while head -c 524288 /dev/zero >"$BR_MNT/d/f$n" 2>/dev/null; do n=$((n + 1)); done
sync -f "$BR_MNT"
w=$(du -s -B1 --apparent-size "$BR_MNT/d" | cut -f1)
br_near "512 KiB files until ENOSPC ($n files) = df avail before" "$a1" "$w"
freed=0
for ((i = 0; i < n; i += 2)); do
	freed=$(( freed + $(size_of "$BR_MNT/d/f$i") ))
	rm "$BR_MNT/d/f$i" || break
done
br_check "rm of every other file on the full fs" test "$i" -ge "$n"
a2=$(avail)
# at least what was deleted; a little more is fine (the dead metadata and
# tails that left the small-file fill short of its promise come back too:
# the next fill checks that all of a2 can be written)
br_check "df avail after deleting every other file ($a2) >= bytes deleted ($freed) less tolerance" \
	test $(( a2 + freed / 50 + seg )) -ge "$freed"
br_check "fill the partly dead segments to ENOSPC" fill big
br_near "bytes written into them = df avail before" "$a2" "$(size_of "$BR_MNT/big")"

# --- 4. still full: overwrites after a delete, space comes back --------------
br_check "rm of the big file on the full fs" rm "$BR_MNT/big"
br_check "overwrite of a small file" \
	dd if=/dev/urandom of="$BR_MNT/d/f1" bs=256k count=1 conv=notrunc,fsync status=none
br_check "a new 8 MiB file after the delete" \
	dd if=/dev/urandom of="$BR_MNT/new" bs=1M count=8 conv=fsync status=none
br_check "truncate to 0 of every remaining file" \
	find "$BR_MNT/d" -type f -exec truncate -s 0 {} +
br_remount
a3=$(avail)
br_near "after remount: df avail = empty fs less the two files kept" \
	$(( a0 - 1048576 - 8 * 1048576 )) "$a3"
br_finish
