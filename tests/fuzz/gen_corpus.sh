#!/bin/bash
# Regenerate the seed corpus in tests/fuzz/corpus/ from images that bringfs
# itself wrote (tests/crash/brtool drives core/fsys; mkfs.bringfs when
# built).  Small files only; commit the result.
#
#   tests/fuzz/gen_corpus.sh BUILD_DIR     (e.g. build)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:?build dir}" && pwd)
BRTOOL=$B/tests/crash/brtool
LOGCUT=$B/tests/crash/logcut
MKFS=$B/mkfs/mkfs.bringfs
T=$(mktemp -d "${TMPDIR:-/tmp}/brcorpus.XXXXXX")
trap 'rm -rf "$T"' EXIT
CS=$HERE/corpus/fuzz_super
CL=$HERE/corpus/fuzz_log
rm -rf "$CS"
find "$CL" -maxdepth 1 -type f ! -name 'regress_*' -delete 2>/dev/null || true
mkdir -p "$CS" "$CL"

# fuzz_super input: 512 superblock bytes, 64 slot bytes[, control byte]
super_input() { # IMAGE OUT [CONTROL-OCTAL]
	{ head -c 512 "$1"; dd if="$1" bs=1 skip=4096 count=64 status=none
	  if [ -n "${3:-}" ]; then printf "\\$3"; fi; } >"$2"
}

"$BRTOOL" mkimage "$T/img"
super_input "$T/img" "$CS/brtool_image"
super_input "$T/img" "$CS/brtool_image_fixcrc" 003
if [ -x "$MKFS" ]; then
	"$MKFS" -q -s 64M "$T/mkfs.img"
	super_input "$T/mkfs.img" "$CS/mkfs_64M"
	"$MKFS" -q -L corpus-label -s 200M "$T/mkfs2.img"
	super_input "$T/mkfs2.img" "$CS/mkfs_200M_label"
fi

# fuzz_log input: per buffer u8 flags, u8 0, u16 len, record bytes
# LIST (logcut list output) IMAGE OUT FIRST COUNT
log_input() {
	local list=$1 img=$2 out=$3 first=$4 count=$5 prevn="" flags
	: >"$out"
	awk -v f="$first" -v c="$count" '$1 ~ /^[0-9]+$/ && $1 >= f && $1 < f + c' "$list" |
	while read -r idx addr seq span len nonce prev; do
		addr=${addr#addr=}; len=${len#len=}; nonce=${nonce#nonce=}
		flags=0
		if [ -n "$prevn" ] && [ "$prevn" != "$nonce" ]; then flags=16; fi
		prevn=$nonce
		printf "\\$(printf %03o $flags)\\000\\$(printf %03o $((len & 255)))\\$(printf %03o $((len >> 8)))" >>"$out"
		dd if="$img" bs=1 skip=$((addr + 40)) count="$len" status=none >>"$out"
	done
}

"$BRTOOL" populate "$T/img" 11 120
"$BRTOOL" populate "$T/img" 12 60
"$LOGCUT" list "$T/img" >"$T/list"
log_input "$T/list" "$T/img" "$CL/first_8_buffers" 0 8
log_input "$T/list" "$T/img" "$CL/first_40_buffers" 0 40
log_input "$T/list" "$T/img" "$CL/two_mounts" 0 100000
"$BRTOOL" mkimage "$T/img2"
"$BRTOOL" populate "$T/img2" 13 25
"$LOGCUT" list "$T/img2" >"$T/list2"
log_input "$T/list2" "$T/img2" "$CL/small_populate" 0 100000
ls -l "$CS" "$CL"
