#!/bin/bash
# fsck.bringfs on damaged metadata copies (no FUSE: images made with
# mkfs.bringfs and brtool).  e2fsck's contract, per case:
#   - -n reports the damage (exit 4) and changes no byte of the image;
#   - -y repairs it (exit 1, "fixed" lines) and the image still opens with
#     the same tree;
#   - a second -n run is clean (exit 0).
# Cases: a fresh mkfs image is clean; a populated image (checkpoints every
# 40 operations, a tail after the last one) is clean; bit flips in the
# primary superblock; the backup superblock zeroed; the older checkpoint
# slot garbled (harmless to the reader: cleared by the repair); the newest
# slot garbled (mount falls back to the older checkpoint and rolls forward
# over the whole log: same tree; the repair clears it); both superblocks
# zeroed (nothing to repair from: exit 4 with -y too).
#
#   test_fsck.sh MKFS FSCK BRTOOL LOGCUT [--seed S]
set -u
MKFS=${1:?mkfs}
FSCK=${2:?fsck}
BRTOOL=${3:?brtool}
LOGCUT=${4:?logcut}
shift 4
SEED=$(( $(date +%s%N) % 1000000007 ))
while [ $# -gt 0 ]; do
	case $1 in
	--seed) SEED=$2; shift 2 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
echo "seed=$SEED (replay: $0 MKFS FSCK BRTOOL LOGCUT --seed $SEED)"

T=$(mktemp -d "${TMPDIR:-/tmp}/brfsck.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
rnd() { awk -v s="$1" -v n="$2" 'BEGIN { srand(s); for (i = 0; i < n; i++) print int(rand() * 2147483647) }'; }
flip() { # FILE BYTE-OFFSET MASK
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ $3)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
zero_block() { dd if=/dev/zero of="$1" bs=4096 seek=$(($2 / 4096)) count=1 conv=notrunc status=none; }

# fsck_rc WANT LABEL ARGS...: run fsck, compare the exit code.
fsck_rc() {
	local want=$1 label=$2 rc
	shift 2
	"$FSCK" "$@" >"$T/fsck.out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$label: fsck.bringfs $* exits $rc"
	else
		bad "$label: fsck.bringfs $* exits $rc, expected $want"
		sed 's/^/    /' "$T/fsck.out" | head -n 15
	fi
}

# An image the engine can run on (io_uring), else skip.
"$BRTOOL" mkimage "$T/base" || exit 1
if ! "$BRTOOL" populate "$T/base" "$SEED" 300 40 >"$T/pop.log" 2>&1; then
	if grep -qiE 'operation not permitted|function not implemented' "$T/pop.log"; then
		echo "SKIP: the engine cannot start here (io_uring unavailable): $(cat "$T/pop.log")"
		exit 77
	fi
	cat "$T/pop.log"
	exit 1
fi
"$BRTOOL" populate "$T/base" $((SEED + 1)) 100 40 >/dev/null || exit 1
list=$("$LOGCUT" list "$T/base" | tail -n 1)
gen=$(field gen "$list")
newest=$(field slot "$list")
older=$((newest ^ 1))
size=$(stat -c %s "$T/base")
backup=$(( size / 4096 * 4096 - 4096 ))
"$BRTOOL" ls "$T/base" | sort >"$T/base.names"
base_info=$("$BRTOOL" info "$T/base") || { bad "the populated image does not open"; exit 1; }
echo "populated: newest checkpoint generation $gen in slot $newest; $base_info"
[ "${gen:-0}" -ge 3 ] || bad "populated image: checkpoint generation ${gen:-?}, expected several"

# ---- clean images ------------------------------------------------------------------
"$MKFS" -q -s 64M "$T/fresh" || exit 1
fsck_rc 0 "fresh mkfs image (empty log)" -n "$T/fresh"
fsck_rc 0 "fresh mkfs image (empty log)" -y "$T/fresh"
cp --sparse=always "$T/base" "$T/img"
fsck_rc 0 "populated image" -n "$T/img"
fsck_rc 0 "populated image" -f -y "$T/img"
cmp -s "$T/base" "$T/img" && ok "populated image: a clean -y run changed nothing" ||
	bad "populated image: a clean -y run changed the image"

# damage_case LABEL DAMAGE-COMMAND WANT-LINE [warning]: -n (exit 4 and an
# error line, or exit 0 and a warning line for harmless damage; image
# untouched), -y (exit 1), -n (exit 0), same names and same tree info.
damage_case() {
	local label=$1 dmg=$2 want=$3 info n_rc=4 n_tag=error
	[ "${4:-}" = warning ] && { n_rc=0; n_tag=warning; }
	cp --sparse=always "$T/base" "$T/img"
	eval "$dmg"
	cp --sparse=always "$T/img" "$T/damaged"
	fsck_rc $n_rc "$label" -n "$T/img"
	grep -q "$n_tag: .*$want" "$T/fsck.out" && ok "$label: -n names the damage" ||
		bad "$label: -n output does not say '$want': $(tr '\n' '|' <"$T/fsck.out")"
	cmp -s "$T/img" "$T/damaged" && ok "$label: -n changed nothing" || bad "$label: -n changed the image"
	fsck_rc 1 "$label" -y "$T/img"
	grep -q "fixed: .*$want" "$T/fsck.out" && ok "$label: -y says what it fixed" ||
		bad "$label: -y output does not say it fixed '$want': $(tr '\n' '|' <"$T/fsck.out")"
	fsck_rc 0 "$label, after the repair" -n "$T/img"
	fsck_rc 0 "$label, after the repair" -p "$T/img"
	if info=$("$BRTOOL" info "$T/img" 2>&1); then
		[ "$(field inodes "$info")" = "$(field inodes "$base_info")" ] &&
			ok "$label: the repaired image opens with the same inodes ($info)" ||
			bad "$label: repaired image: '$info', before: '$base_info'"
	else
		bad "$label: the repaired image does not open: $info"
	fi
	"$BRTOOL" ls "$T/img" | sort | cmp -s - "$T/base.names" &&
		ok "$label: same names in the root after the repair" ||
		bad "$label: names in the root differ after the repair"
}

mapfile -t R < <(rnd "$SEED" 12)
damage_case "bit flips in the primary superblock" \
	'for j in 1 2 3; do flip "$T/img" $((R[j] % 512)) $((1 << (R[j + 3] % 8))); done' \
	"primary superblock is damaged"
cmp -s <(dd if="$T/img" bs=4096 count=1 status=none) <(dd if="$T/img" bs=4096 skip=$((backup / 4096)) count=1 status=none) &&
	ok "primary superblock: the repaired copy equals the backup" ||
	bad "primary superblock: the repaired copy differs from the backup"
damage_case "backup superblock zeroed" 'zero_block "$T/img" "$backup"' "backup superblock is damaged"
damage_case "older checkpoint slot $older garbled" \
	'flip "$T/img" $((4096 * (1 + older) + R[7] % 64)) $((1 << (R[8] % 8)))' \
	"checkpoint slot $older is damaged" warning
[ "$(dd if="$T/img" bs=4096 skip=$((1 + older)) count=1 status=none | tr -d '\0' | wc -c)" = 0 ] &&
	ok "older slot: the repair cleared it" || bad "older slot: not cleared by the repair"
info=$("$BRTOOL" info "$T/img")
[ "$(field gen "$info")" = "$gen" ] && ok "older slot: the newest checkpoint ($gen) still loads" ||
	bad "older slot: loaded '$info', expected generation $gen"
damage_case "newest checkpoint slot $newest garbled" \
	'flip "$T/img" $((4096 * (1 + newest) + R[9] % 64)) $((1 << (R[10] % 8)))' \
	"checkpoint slot $newest is damaged" warning

# both superblocks: nothing to repair from
cp --sparse=always "$T/base" "$T/img"
zero_block "$T/img" 0
zero_block "$T/img" "$backup"
fsck_rc 4 "both superblocks zeroed" -y "$T/img"
grep -q "error: no valid superblock" "$T/fsck.out" && ok "both superblocks zeroed: reported" ||
	bad "both superblocks zeroed: not reported: $(tr '\n' '|' <"$T/fsck.out")"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
