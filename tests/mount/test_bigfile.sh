#!/bin/bash
# A 5 GiB file written sequentially with dd, read back with sha256 after a
# remount; then 1 MiB overwritten beyond 4.5 GiB, remount, whole file again.
# Suite 'mount-slow'.
#
# The data is a random chunk of 64 MiB + 4093 bytes (from /dev/urandom)
# repeated: its length is not a multiple of any block size, so a block put at
# the wrong offset (by a multiple of 4 KiB, 1 MiB, ...) has different content
# there and changes the checksum.
#
#   test_bigfile.sh [MKFS BRINGFS]     BR_BIG_SIZE (default 5G) for other sizes
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-8G}
br_setup "$1" "$2"

size=$(numfmt --from=iec "${BR_BIG_SIZE:-5G}")
BR_BG_PIDS=
chunk=$BR_TMP/chunk
head -c $((64 * 1048576 + 4093)) /dev/urandom >"$chunk" || br_die "chunk"
stream() { while cat "$chunk"; do :; done 2>/dev/null | head -c "$size"; }

# the patch: 1 MiB + 5 bytes at an unaligned offset beyond 4.5 GiB (or at 90 %)
off=$((size / 10 * 9 + 12345))
[ "$size" -gt $((4608 * 1048576 + 2097152)) ] && off=$((4608 * 1048576 + 12345))
plen=$((1048576 + 5))
head -c "$plen" /dev/urandom >"$BR_TMP/patch"

# the expected checksums, computed while dd writes (they only read host files)
( stream | sha256sum | cut -c1-64 >"$BR_TMP/want" ) &
BR_BG_PIDS="$BR_BG_PIDS $!"
( { stream | head -c "$off"; cat "$BR_TMP/patch"; stream | tail -c +$((off + plen + 1)); } |
	sha256sum | cut -c1-64 >"$BR_TMP/want2" ) &
BR_BG_PIDS="$BR_BG_PIDS $!"

br_log "writing $size bytes with dd"
t0=$(date +%s.%N)
stream | dd of="$BR_MNT/big" bs=1M iflag=fullblock conv=fsync status=none
br_check "dd of $size bytes succeeded" test "${PIPESTATUS[1]}" = 0
t1=$(date +%s.%N)
br_log "write: $(awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f MiB/s", s / 1048576 / (b - a) }')"
br_eq "size after write" "$size" "$(stat -c %s "$BR_MNT/big")"
used=$(df -B1 --output=used "$BR_MNT" | tail -n 1)
br_check "df used ($used) >= file size" test "$used" -ge "$size"
# before the remount: the last 64 MiB (the page cache may still hold them)
br_check "last 64 MiB before remount" \
	cmp -i $((size - 67108864)):0 "$BR_MNT/big" <(stream | tail -c 67108864)
wait $BR_BG_PIDS	# the checksums (not a bare wait: the daemon is a child too)
want=$(cat "$BR_TMP/want")
want2=$(cat "$BR_TMP/want2")
br_check "expected checksums computed" test ${#want} = 64 -a ${#want2} = 64

br_remount
br_eq "size after remount" "$size" "$(stat -c %s "$BR_MNT/big")"
t0=$(date +%s.%N)
br_eq "sha256 after remount" "$want" "$(sha256sum <"$BR_MNT/big" | cut -c1-64)"
t1=$(date +%s.%N)
br_log "read+sha256: $(awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f MiB/s", s / 1048576 / (b - a) }')"

br_check "overwrite $plen bytes at $off" \
	dd if="$BR_TMP/patch" of="$BR_MNT/big" bs=1M seek="$off" oflag=seek_bytes conv=notrunc,fsync status=none
br_remount
br_eq "size after overwrite + remount" "$size" "$(stat -c %s "$BR_MNT/big")"
br_check "patched region after remount" \
	cmp -n "$plen" -i "$off:0" "$BR_MNT/big" "$BR_TMP/patch"
br_eq "sha256 of the whole patched file after remount" "$want2" "$(sha256sum <"$BR_MNT/big" | cut -c1-64)"
br_check "rm of the 5 GiB file" rm "$BR_MNT/big"
br_finish
