#!/bin/bash
# Read-only mounts (-o ro): the tree reads back as written, every change
# fails with EROFS, the image is not changed by a single byte (no root
# record, no atime or time records, no checkpoint), a read-write mount of
# the same image is refused meanwhile, and an image that was never mounted
# read-write (no root directory yet) is refused without being written.
#
#   test_ro.sh [MKFS BRINGFS]
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-512M}
br_setup "$1" "$2"
[ -n "${BR_TEST_NOMOUNT_DIR:-}" ] && br_skip "needs a real bringfs mount"

# ---- populate through a read-write mount ----------------------------------
mkdir "$BR_MNT/d" || br_die "mkdir"
head -c 3000000 /dev/urandom >"$BR_TMP/data" || br_die "random data"
cp "$BR_TMP/data" "$BR_MNT/d/file" || br_die "cp"
ln -s d/file "$BR_MNT/link" || br_die "symlink"
if command -v setfattr >/dev/null; then
	setfattr -n user.k -v v "$BR_MNT/d/file" || br_die "setfattr"
fi
br_unmount || br_die "unmount after populating"
sum_before=$(sha256sum <"$BR_IMG")

# ---- read-only mount --------------------------------------------------------
rw_opts=${BR_MOUNT_OPTS:-}
BR_MOUNT_OPTS=${rw_opts:+$rw_opts,}ro
br_mount
br_eq "the kernel mount is read-only" ro \
	"$(awk -v m="$BR_MNT" '$2 == m { split($4, o, ","); print o[1] }' /proc/self/mounts)"
br_check "file reads back" cmp "$BR_TMP/data" "$BR_MNT/d/file"
br_check "file reads back through the symlink" cmp "$BR_TMP/data" "$BR_MNT/link"
br_check "directory lists" test "$(ls "$BR_MNT")" = "$(printf 'd\nlink')"
if command -v getfattr >/dev/null; then
	br_eq "xattr reads back" v "$(getfattr --only-values -n user.k "$BR_MNT/d/file" 2>/dev/null)"
fi
br_check "statfs works" stat -f "$BR_MNT"

# must_erofs DESC CMD...: CMD fails, and says EROFS
must_erofs() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		br_failed "$desc: succeeded on a read-only mount"
	elif [[ $out == *"Read-only file system"* ]]; then
		br_pass "$desc: EROFS"
	else
		br_failed "$desc: failed, but not with EROFS: $out"
	fi
}
must_erofs "create" touch "$BR_MNT/new"
must_erofs "append" sh -c "echo x >>'$BR_MNT/d/file'"
must_erofs "truncate" truncate -s 0 "$BR_MNT/d/file"
must_erofs "mkdir" mkdir "$BR_MNT/d2"
must_erofs "unlink" rm -f "$BR_MNT/link"
must_erofs "rename" mv "$BR_MNT/d/file" "$BR_MNT/d/file2"
must_erofs "chmod" chmod 600 "$BR_MNT/d/file"
must_erofs "utimes" touch -d @0 "$BR_MNT/d/file"
if command -v setfattr >/dev/null; then
	must_erofs "setxattr" setfattr -n user.k2 -v v "$BR_MNT/d/file"
fi
br_check "file unchanged after the refused writes" cmp "$BR_TMP/data" "$BR_MNT/d/file"

# a read-write mount of the same image must be refused while we show it
mkdir -p "$BR_TMP/mnt2"
if timeout 30 "$BR_BRINGFS" -f "$BR_IMG" "$BR_TMP/mnt2" >"$BR_TMP/rw2.log" 2>&1; then
	br_failed "a read-write mount was allowed next to the read-only one"
else
	br_pass "a read-write mount is refused while mounted read-only"
fi
awk -v m="$BR_TMP/mnt2" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts &&
	fusermount3 -u "$BR_TMP/mnt2"

br_unmount || br_failed "clean read-only unmount"
br_eq "the image is unchanged after the read-only mount" "$sum_before" \
	"$(sha256sum <"$BR_IMG")"

# ---- read-write again: nothing was lost ------------------------------------
BR_MOUNT_OPTS=$rw_opts
br_mount
br_check "file reads back after the read-only mount" cmp "$BR_TMP/data" "$BR_MNT/d/file"
br_check "read-write works again" sh -c "echo x >'$BR_MNT/new'"
br_unmount || br_failed "clean unmount"

# ---- an image never mounted read-write has no root: refused, untouched -----
"$BR_MKFS" -f -q -s 128M "$BR_TMP/fresh.img" >/dev/null 2>&1 || br_die "mkfs fresh.img"
sum_fresh=$(sha256sum <"$BR_TMP/fresh.img")
mkdir -p "$BR_TMP/mnt3"
if timeout 30 "$BR_BRINGFS" -f -o ro "$BR_TMP/fresh.img" "$BR_TMP/mnt3" >"$BR_TMP/ro3.log" 2>&1; then
	br_failed "a read-only mount of a never-mounted image was allowed"
else
	br_check "the refusal says why" grep -q "no root directory" "$BR_TMP/ro3.log"
fi
awk -v m="$BR_TMP/mnt3" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts &&
	fusermount3 -u "$BR_TMP/mnt3"
br_eq "the never-mounted image is unchanged" "$sum_fresh" "$(sha256sum <"$BR_TMP/fresh.img")"

br_finish
