#!/bin/bash
# Power cuts against the engine itself (core/fsys through brtool, no FUSE):
#
#  1. An image is populated over two mounts (two nonces in the chain) with
#     many small fsync'ed buffers.  Then, per round, a copy gets one random
#     power-cut model from `logcut random`: everything after buffer k
#     zeroed, buffer k torn at a 512-byte boundary, or one byte of buffer k
#     flipped (buffers after it kept).  logcut prints P, where a correct
#     replay must stop (its own chain walker, independent of replay.c).
#     The image must open, replay must end exactly at P, and a write +
#     fsync after it must continue the chain at P (prev_nonce = nonce of
#     the last buffer before P) and be found by the next open.
#  2. The mount chain: buffer k is zeroed (k+1.. stay: a crash in
#     tail-localised mode), the image is opened (replay stops at k), a small
#     file is written + fsync'ed at k's address and the process dies.  The
#     old buffer k+1 now sits exactly behind the new buffer with the right
#     seq and a valid CRC: only the nonce chain tells it is stale.  Checked:
#     it is there (the case is really exercised), replay does not take it,
#     and no name that only old buffers k+1.. held reappears.
#
#  3. Power cuts around checkpoints: a second image is populated with a
#     checkpoint every 40 operations (no clean close: the last checkpoint
#     is followed by a tail).  Per round `logcut ckpt` models one of:
#     preslot (crash after the newest checkpoint's CUT record, before its
#     slot write: slot zeroed, the log cut after the CUT), postslot (slot
#     written, the tail after it cut or torn; inside the blob the mount must
#     fall back), tornslot (the newest slot garbled, the log cut after its
#     blob).  The image must open, load exactly the checkpoint generation
#     logcut names (expect_gen: the older one whenever the newest is
#     unusable), replay must stop at P, and a write + fsync after it must be
#     found by the next open.
#
# The images are never closed cleanly (brtool populate/info/crashwrite
# _exit): a clean close writes a checkpoint and the log after it would be a
# few buffers, not a tail worth cutting.
#
#   test_replay_cut.sh BRTOOL LOGCUT [--rounds N] [--seed S]
set -u
BRTOOL=${1:?brtool}
LOGCUT=${2:?logcut}
shift 2
ROUNDS=40
SEED=$(( $(date +%s%N) % 1000000007 ))
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
echo "seed=$SEED rounds=$ROUNDS (replay: $0 BRTOOL LOGCUT --seed $SEED --rounds $ROUNDS)"

T=$(mktemp -d "${TMPDIR:-/tmp}/brcut.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

# io_uring is needed by the store: without it the engine cannot open.
"$BRTOOL" mkimage "$T/base" || exit 1
if ! "$BRTOOL" populate "$T/base" "$SEED" 300 >"$T/pop.log" 2>&1; then
	if grep -qiE 'operation not permitted|function not implemented' "$T/pop.log"; then
		echo "SKIP: the engine cannot start here (io_uring unavailable): $(cat "$T/pop.log")"
		exit 77
	fi
	cat "$T/pop.log"
	exit 1
fi
"$BRTOOL" populate "$T/base" $((SEED + 1)) 150 || exit 1
"$LOGCUT" list "$T/base" >"$T/base.list" || exit 1
nbuf=$(sed -n 's/.* buffers=\([0-9]*\) .*/\1/p' "$T/base.list")
nonces=$(grep -o 'nonce=[0-9a-f]*' "$T/base.list" | sort -u | wc -l)
echo "base image: $nbuf buffers, $nonces mount nonces"
[ "$nbuf" -ge 100 ] && [ "$nonces" -ge 2 ] || { echo "base image too small for the test"; exit 1; }
info=$("$BRTOOL" info "$T/base") || exit 1
[ "$(field next "$info")" = "$(sed -n 's/^end=\([0-9]*\) .*/\1/p' "$T/base.list")" ] &&
	ok "replay of the intact log ends where the walker's chain ends" ||
	bad "intact log: replay says '$info', walker: $(tail -n 1 "$T/base.list")"

# ---- 1. random cut / tear / flip ------------------------------------------------
for i in $(seq 1 "$ROUNDS"); do
	s=$((SEED * 1000 + i))
	cp --sparse=always "$T/base" "$T/img"
	cut=$("$LOGCUT" random "$T/img" "$s") || { bad "round $i: logcut failed"; continue; }
	P=$(field P "$cut")
	if ! info=$("$BRTOOL" info "$T/img" 2>&1); then
		bad "round $i (seed $s, $cut): open failed: $info"
		continue
	fi
	next=$(field next "$info")
	Pc=$(field Pc "$cut")
	if [ "$next" != "$P" ] && [ "$next" != "$Pc" ]; then
		bad "round $i (seed $s, $cut): replay stopped at $next, expected $P (or $Pc)"
		continue
	fi
	# last valid buffer before the cut (ends at Pc), from the original list
	prev=$(awk -v p="$Pc" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		if ($1 ~ /^[0-9]+$/ && f["addr"] + f["span"] == p) print f["nonce"] }' "$T/base.list")
	[ -n "$prev" ] || prev=00000000
	out=$("$BRTOOL" crashwrite "$T/img" marker 2>&1) || { bad "round $i: write after the cut: $out"; continue; }
	"$LOGCUT" list "$T/img" >"$T/img.list"
	first_new=$(awk -v p="$next" '$2 == "addr=" p { print }' "$T/img.list")
	if [ -z "$first_new" ] || ! printf '%s' "$first_new" | grep -q "prev=$prev "; then
		bad "round $i (seed $s, $cut): no buffer at $next continuing the chain from nonce $prev: '$first_new'"
		continue
	fi
	if ! "$BRTOOL" ls "$T/img" | grep -qx marker; then
		bad "round $i (seed $s, $cut): the file written after the cut is not found by the next open"
		continue
	fi
	ok "round $i (seed $s): $(field model "$cut") at buffer $(field K "$cut"): replay stops at P=$P, chain continues there"
done

# ---- 2. the mount chain: a hole at k, stale k+1 behind the next mount's buffer ----
tried=0 exercised=0
for k in $(awk '$1 ~ /^[0-9]+$/ && $4 == "span=4096" { print $1 }' "$T/base.list" |
	awk -v n="$nbuf" -v s="$SEED" 'BEGIN { srand(s) } $1 > 5 && $1 < n - 10 { print rand() "\t" $1 }' |
	sort | cut -f2 | head -n 6); do
	tried=$((tried + 1))
	# names visible in the root at the hole (everything before k)
	cp --sparse=always "$T/base" "$T/pre"
	"$LOGCUT" cut "$T/pre" "$k" >/dev/null
	"$BRTOOL" ls "$T/pre" | sort >"$T/pre.names"
	cp --sparse=always "$T/base" "$T/img"
	"$BRTOOL" ls "$T/img" | sort >"$T/all.names"
	cut=$("$LOGCUT" hole "$T/img" "$k")
	P=$(field P "$cut")
	info=$("$BRTOOL" info "$T/img" 2>&1) || { bad "hole at $k: open failed: $info"; continue; }
	n1=$(field next "$info")
	[ "$n1" = "$P" ] || [ "$n1" = "$(field Pc "$cut")" ] || { bad "hole at $k: replay stopped at $n1, expected $P"; continue; }
	"$BRTOOL" crashwrite "$T/img" after-hole >/dev/null || { bad "hole at $k: write after the hole failed"; continue; }
	"$LOGCUT" list "$T/img" >"$T/img.list"
	end=$(sed -n 's/^end=\([0-9]*\) .*/\1/p' "$T/img.list")
	nseq=$(sed -n 's/.* next_seq=\([0-9]*\) .*/\1/p' "$T/img.list")
	lnonce=$(sed -n 's/.* last_nonce=\([0-9a-f]*\) .*/\1/p' "$T/img.list")
	peek=$("$LOGCUT" peek "$T/img" "$end" "$nseq" "0x$lnonce")
	if [ "$peek" != "match nonce-bad" ]; then
		echo "     (hole at $k: the next mount's buffers do not end on an old buffer: $peek; trying another k)"
		continue
	fi
	exercised=$((exercised + 1))
	info=$("$BRTOOL" info "$T/img" 2>&1) || { bad "hole at $k: open after the rewrite failed: $info"; continue; }
	[ "$(field next "$info")" = "$end" ] &&
		ok "hole at buffer $k: replay stops at the stale buffer behind the new one (seq $nseq matches, nonce does not)" ||
		bad "hole at buffer $k: replay went on to $(field next "$info") past the chain end $end: a stale buffer was replayed"
	"$BRTOOL" ls "$T/img" | sort >"$T/post.names"
	{ cat "$T/pre.names"; echo after-hole; } | sort >"$T/want.names"
	if cmp -s "$T/want.names" "$T/post.names"; then
		ok "hole at buffer $k: root holds the names from before the hole + the new file, nothing from the stale buffers ($(wc -l <"$T/post.names") names; $(wc -l <"$T/all.names") before the crash)"
	else
		bad "hole at buffer $k: names differ from (before the hole + after-hole): $(diff "$T/want.names" "$T/post.names" | grep '^[<>]' | tr '\n' ' ')"
	fi
	[ $exercised -ge 3 ] && break
done
[ $exercised -ge 1 ] && ok "mount-chain case exercised $exercised time(s) out of $tried" ||
	bad "mount-chain case never exercised ($tried holes tried): the test lost its point"

# ---- 3. power cuts around checkpoints ---------------------------------------------
"$BRTOOL" mkimage "$T/cbase" || exit 1
"$BRTOOL" populate "$T/cbase" $((SEED + 2)) 300 40 >/dev/null || exit 1
"$BRTOOL" populate "$T/cbase" $((SEED + 3)) 150 40 >/dev/null || exit 1
"$LOGCUT" list "$T/cbase" >"$T/cbase.list" || exit 1
cgen=$(sed -n 's/.* gen=\([0-9]*\) .*/\1/p' "$T/cbase.list")
echo "checkpoint image: newest checkpoint generation $cgen, $(sed -n 's/.* buffers=\([0-9]*\) .*/\1/p' "$T/cbase.list") buffers after its roll point"
[ "${cgen:-0}" -ge 5 ] || { bad "checkpoint image: only generation ${cgen:-?} after 11 checkpoints"; }
declare -A done_mode=()
cr=$(( ROUNDS * 3 / 4 ))
for i in $(seq 1 "$cr"); do
	s=$((SEED * 1000 + 500 + i))
	mode=$(case $((i % 3)) in 0) echo preslot;; 1) echo postslot;; 2) echo tornslot;; esac)
	cp --sparse=always "$T/cbase" "$T/img"
	cut=$("$LOGCUT" ckpt "$T/img" "$s" "$mode")
	rc=$?
	if [ $rc = 3 ]; then
		echo "     (ckpt round $i: $cut)"
		continue
	fi
	[ $rc = 0 ] || { bad "ckpt round $i (seed $s, $mode): logcut failed: $cut"; continue; }
	P=$(field P "$cut") Pc=$(field Pc "$cut")
	if ! info=$("$BRTOOL" info "$T/img" 2>&1); then
		bad "ckpt round $i (seed $s, $cut): open failed: $info"
		continue
	fi
	if [ "$(field gen "$info")" != "$(field expect_gen "$cut")" ]; then
		bad "ckpt round $i (seed $s, $cut): loaded checkpoint $(field gen "$info"), expected $(field expect_gen "$cut") ($info)"
		continue
	fi
	next=$(field next "$info")
	if [ "$next" != "$P" ] && [ "$next" != "$Pc" ]; then
		bad "ckpt round $i (seed $s, $cut): replay stopped at $next, expected $P (or $Pc)"
		continue
	fi
	out=$("$BRTOOL" crashwrite "$T/img" marker 2>&1) || { bad "ckpt round $i (seed $s, $cut): write after the cut: $out"; continue; }
	if ! "$BRTOOL" ls "$T/img" | grep -qx marker; then
		bad "ckpt round $i (seed $s, $cut): the file written after the cut is not found by the next open"
		continue
	fi
	done_mode[$mode]=$(( ${done_mode[$mode]:-0} + 1 ))
	ok "ckpt round $i (seed $s): $(field model "$cut") at buffer $(field K "$cut"): checkpoint $(field gen "$info") loaded (newest $(field newest_gen "$cut")), replay stops at P=$P, chain continues"
done
for m in preslot postslot tornslot; do
	[ "${done_mode[$m]:-0}" -ge 1 ] && ok "checkpoint model $m exercised ${done_mode[$m]} time(s)" ||
		bad "checkpoint model $m never exercised: the test lost its point"
done

echo "$pass passed, $fail failed"
[ $fail = 0 ]
