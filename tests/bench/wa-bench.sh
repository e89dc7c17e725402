#!/bin/bash
# Write amplification of the segment cleaner: a bringfs image mounted with
# -o cleaner=on is filled to a utilisation, then overwritten at random in
# 4 KiB O_DIRECT writes (fio) for several times its capacity, uniformly or
# hot/cold (90% of the writes to 10% of the data).  WA = bytes the device
# got / bytes users wrote during the overwrite phase, from the root's
# user.bringfs.stats xattr before and after.
#
#   tests/bench/wa-bench.sh [--quick] [--size SIZE] [--dir DIR] [--mkfs P] [--bringfs P]
#                           [--util "50 70 90"] [--pattern "uniform hotcold"]
#
# The random overwrites are independent draws (fio --norandommap): a
# random permutation of the blocks, fio's default, kills whole segments
# by itself late in every pass and made WA look up to 3x better.
#
# Prints, per utilisation (50, 70, 90 %) and pattern (uniform, hotcold):
#   bench=wa util=<u> pattern=<p> wa=<v> sprite_wa=<v> ratio=<v> user_mib=<v> cleaned_segments=<n> mib_s=<v> iops=<v> copy=<v> ckpt=<v> log=<v> free=<v> dead=<v> ckpt_wait=<v> open=<v> reserve=<v>
# where WA = copy + ckpt + log: the cleaner's copies, its checkpoints
# and the log (users' records with their headers, metadata, RELOC
# records, the other checkpoints), each per user byte; free ... reserve
# are the segments out of the cleaner's reach during the overwrite
# (averages of a sample a second from the stats xattr): free, dead (no
# live data, waiting for durability or, ckpt_wait of them, for a
# checkpoint), open (the log's current and next segment, the cleaner's
# head) and the user reserve (part of free).
# sprite_wa is the reference from the same run: Sprite LFS's cost-benefit
# cleaner simulated on the same segments, utilisation and pattern
# (tests/bench/lfs_model.c: no reserve, metadata or checkpoints, so the
# policy's own floor); ratio = sprite_wa / wa (> 1: bringfs writes less).
# WA counts writes only; Sprite LFS's "write cost" also counts the
# cleaner's reads: for segments cleaned at utilisation u, write cost
# 2/(1-u) corresponds to WA 1/(1-u).  Utilisation is of the log (df's size).
#
# Throughput under cleaning (when 90 is among --util and uniform among
# --pattern): the IOPS of the uniform overwrite at 90 % (fio's own
# figure: the whole phase, so the cleaner's steady state) against the same
# fio job on an empty filesystem (a file of 10 % of the log, overwritten
# for the same number of bytes; the median of three such runs), same run:
#   bench=clean-throughput util=90 iops_full=<v> iops_empty=<v> ratio=<v> empty_runs=<a,b,c>
# (the goal is ratio >= 0.5).
# Cleans up on exit: unmounts, deletes the image.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
base=/var/tmp
size=1G
times=3
MKFS=$REPO/build/mkfs/mkfs.bringfs
BRINGFS=$REPO/build/fs/bringfs
MODEL=$REPO/build/tests/bench/lfs-model
utils="50 70 90"
patterns="uniform hotcold"
while [ $# -gt 0 ]; do
	case $1 in
	--quick) size=256M; times=2 ;;
	--size) size=$2; shift ;;
	--dir) base=$2; shift ;;
	--mkfs) MKFS=$2; shift ;;
	--bringfs) BRINGFS=$2; shift ;;
	--util) utils=$2; shift ;;
	--pattern) patterns=$2; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0 ;;
	*) echo "wa-bench: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
for t in "$MKFS" "$BRINGFS" "$MODEL"; do
	[ -x "$t" ] || { echo "wa-bench: error: $t is not built (run tests/setup.sh)" >&2; exit 1; }
done
command -v fio >/dev/null || { echo "wa-bench: error: fio is not installed" >&2; exit 1; }
command -v getfattr >/dev/null || { echo "wa-bench: error: getfattr (package attr) is not installed" >&2; exit 1; }

T=$(mktemp -d "$base/wa-bench.XXXXXX") || exit 1
sampler=
cleanup() {
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
	mountpoint -q "$T/mnt" 2>/dev/null && { fusermount3 -u "$T/mnt" 2>/dev/null || fusermount3 -uz "$T/mnt"; }
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$T/mnt"

stat_of() { # NAME: one field of the stats xattr
	getfattr --only-values -n user.bringfs.stats "$T/mnt" 2>/dev/null |
		sed -n "s/^$1 //p"
}

iops_full= iops_empty=
run() { # UTIL PATTERN [empty]: with "empty", only the IOPS (iops_empty)
	local util=$1 pattern=$2 mode=${3:-} total user0 dev0 user1 dev1 t0 t1 fill dist iops segs sprite
	local cp0 cp1 ck0 ck1
	"$MKFS" -q -f -s "$size" "$T/img" || exit 1
	"$BRINGFS" -o cleaner=on "$T/img" "$T/mnt" || exit 1
	# the log's size (df counts it all, the reserve as used); the
	# overwrite volume is the same for every run of one --size
	total=$(df -B1 --output=size "$T/mnt" | tail -n 1)
	fill=$(( total * util / 100 / 1048576 ))M
	if ! fio --name=fill --filename="$T/mnt/data" --rw=write --bs=1M --size="$fill" \
		--direct=1 --end_fsync=1 --output=/dev/null 2>/dev/null; then
		echo "bench=wa util=$util pattern=$pattern error=fill-failed (ENOSPC below the utilisation df promised)"
		fusermount3 -u "$T/mnt"
		rm -f "$T/img"
		return
	fi
	sync -f "$T/mnt/data"
	user0=$(stat_of user_bytes); dev0=$(stat_of device_bytes)
	cp0=$(stat_of cleaner_copied_bytes); ck0=$(stat_of cleaner_ckpt_bytes)
	dist=random
	[ "$pattern" = hotcold ] && dist=zoned:90/10:10/90
	t0=$(date +%s.%N)
	# where the segments are while it runs (sampled each second)
	( while mountpoint -q "$T/mnt"; do getfattr --only-values -n user.bringfs.stats "$T/mnt" 2>/dev/null |
		awk '{ v[$1] = $2 } END { if (v["free_segments"] != "") print v["free_segments"], v["dead_segments"], v["checkpoint_wait_segments"], v["open_segments"], v["user_reserve_segments"] }'
		sleep 1; done ) >"$T/segs" &
	sampler=$!
	# terse field 49: write IOPS
	iops=$(fio --name=over --filename="$T/mnt/data" --rw=randwrite --bs=4k \
		--size="$fill" --io_size=$(( total * times / 1048576 ))M \
		--random_distribution="$dist" --norandommap --randrepeat=1 --direct=1 --ioengine=psync \
		--end_fsync=1 --minimal 2>"$T/fio.err" | awk -F';' '{ print $49 }')
	[ -n "$iops" ] || { echo "wa-bench: overwrite failed (ENOSPC?): $(head -c 300 "$T/fio.err")" >&2; iops=0; }
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; sampler=
	sync -f "$T/mnt/data"
	t1=$(date +%s.%N)
	if [ "$mode" = empty ]; then
		iops_empty=$iops
		fusermount3 -u "$T/mnt"
		rm -f "$T/img"
		return
	fi
	[ "$util" = 90 ] && [ "$pattern" = uniform ] && iops_full=$iops
	user1=$(stat_of user_bytes); dev1=$(stat_of device_bytes)
	cp1=$(stat_of cleaner_copied_bytes); ck1=$(stat_of cleaner_ckpt_bytes)
	segs=$(stat_of total_segments)
	# the same geometry: df's size is the log, total_segments of it
	sprite=$("$MODEL" "$segs" $(( total / segs / 4096 )) "$util" "$pattern" \
		cost-benefit "$times" | sed -n 's/.* wa=//p')
	awk -v u="$util" -v p="$pattern" -v du=$((user1 - user0)) -v dd=$((dev1 - dev0)) \
		-v cs="$(stat_of cleaned_segments)" -v s="$(echo "$t1 - $t0" | bc)" \
		-v io="$iops" -v sw="$sprite" -v dc=$((cp1 - cp0)) -v dk=$((ck1 - ck0)) \
		-v held="$(awk '{ for (i = 1; i <= 5; i++) t[i] += $i; n++ }
			END { if (n) printf "%.1f %.1f %.1f %.1f %.1f", t[1]/n, t[2]/n, t[3]/n, t[4]/n, t[5]/n
			      else print "0 0 0 0 0" }' "$T/segs")" \
		'BEGIN { wa = du ? dd / du : 0; split(held, h, " ")
			printf "bench=wa util=%d pattern=%s wa=%.2f sprite_wa=%.2f ratio=%.2f user_mib=%.0f cleaned_segments=%s mib_s=%.1f iops=%.0f copy=%.2f ckpt=%.3f log=%.3f free=%s dead=%s ckpt_wait=%s open=%s reserve=%s\n",
			u, p, wa, sw, wa ? sw / wa : 0, du / 1048576, cs, du / 1048576 / s, io,
			du ? dc / du : 0, du ? dk / du : 0, du ? (dd - dc - dk) / du : 0,
			h[1], h[2], h[3], h[4], h[5] }'
	fusermount3 -u "$T/mnt"
	rm -f "$T/img"
}

for util in $utils; do
	for pattern in $patterns; do
		run "$util" "$pattern"
	done
done
if [ -n "$iops_full" ]; then
	# the empty figure swings most (9.7k-17.5k on a shared 2-core
	# machine): the median of three runs
	empties=
	for i in 1 2 3; do
		run 10 uniform empty
		empties="$empties $iops_empty"
	done
	iops_empty=$(printf '%s\n' $empties | sort -n | sed -n 2p)
	awk -v f="$iops_full" -v e="$iops_empty" -v all="$empties" 'BEGIN {
		gsub(/^ /, "", all); gsub(/ /, ",", all)
		printf "bench=clean-throughput util=90 iops_full=%.0f iops_empty=%.0f ratio=%.2f empty_runs=%s\n",
			f, e, (e > 0 ? f / e : 0), all }'
fi
