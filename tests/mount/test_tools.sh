#!/bin/bash
# Ordinary tools on a real tree, on a bringfs mount:
#   cp -a in and out, diff -r, tar c | tar x, rsync -aHX, git, ln, ln -s, mv,
#   chmod, touch -d, truncate, setfattr/getfattr, df; then remount and
#   compare a full manifest (paths, types, modes, owners, link counts, sizes,
#   mtimes and ctimes in ns, symlink targets, hard-link groups, sha256 of
#   contents, user.* xattrs) taken before and after: must be identical.
#
#   test_tools.sh [MKFS BRINGFS]
#   BR_TREE_SRC (default /usr/include), BR_TREE_MAX_MB (default 150): the tree.
. "$(dirname "$0")/lib.sh"
BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-4G}
br_setup "$@"

M=$BR_MNT
T=$BR_TMP
SRC_TREE=${BR_TREE_SRC:-/usr/include}
MAX_MB=${BR_TREE_MAX_MB:-150}

# ---- the reference tree, staged on the host ---------------------------------
# A copy of (a size-bounded part of) /usr/include, plus what it lacks: hard
# links, symlinks (relative, absolute, dangling, to a dir), user xattrs,
# unusual modes, a sparse file, an empty file, exact ns timestamps.
S=$T/src
mkdir "$S"
total=0
for e in $(cd "$SRC_TREE" && ls -A | LC_ALL=C sort); do
	mb=$(du -sm "$SRC_TREE/$e" | cut -f1)
	[ $((total + mb)) -gt "$MAX_MB" ] && continue
	cp -a "$SRC_TREE/$e" "$S/" || br_die "staging $SRC_TREE/$e"
	total=$((total + mb))
done
mkdir -p "$S/zz_extra/sub/deeper"
printf 'hello\n' >"$S/zz_extra/file"
ln "$S/zz_extra/file" "$S/zz_extra/hardlink"
ln "$S/zz_extra/file" "$S/zz_extra/sub/hardlink2"
ln -s file "$S/zz_extra/rel-symlink"
ln -s /etc/hostname "$S/zz_extra/abs-symlink"
ln -s does-not-exist "$S/zz_extra/dangling"
ln -s sub "$S/zz_extra/dir-symlink"
: >"$S/zz_extra/empty"
truncate -s 3M "$S/zz_extra/sparse"
printf 'middle' | dd of="$S/zz_extra/sparse" bs=1 seek=1234567 conv=notrunc status=none
head -c 1000000 /dev/urandom >"$S/zz_extra/random"
chmod 640 "$S/zz_extra/random"
chmod 1777 "$S/zz_extra/sub"
chmod 4755 "$S/zz_extra/empty"
chmod 000 "$S/zz_extra/sub/deeper"
if command -v setfattr >/dev/null; then
	setfattr -n user.comment -v "a comment" "$S/zz_extra/file"
	setfattr -n user.bin -v 0x00ff00ff "$S/zz_extra/random"
	setfattr -n user.dir -v yes "$S/zz_extra/sub"
fi
touch -h -d '2001-02-03 04:05:06.123456789' "$S/zz_extra/rel-symlink"
touch -d '2040-06-07 08:09:10.987654321' "$S/zz_extra/random"
nfiles=$(find "$S" | wc -l)
br_log "reference tree: $nfiles entries, ~$((total)) MB from $SRC_TREE + extras"
br_manifest "$S" noctime >"$T/m.src" || br_die "manifest of the source"

# ---- cp -a in and out ----------------------------------------------------------
br_check "cp -a tree into the mount" cp -a "$S" "$M/cp"
br_check "diff -r source vs copy on the mount" diff -r --no-dereference "$S" "$M/cp"
br_manifest "$M/cp" noctime >"$T/m.cp"
br_same_manifest "cp -a into the mount preserves modes, times, links, xattrs" "$T/m.src" "$T/m.cp"
br_check "cp -a tree out of the mount" cp -a "$M/cp" "$T/cpout"
br_check "diff -r copy out vs source" diff -r --no-dereference "$S" "$T/cpout"
br_manifest "$T/cpout" noctime >"$T/m.cpout"
br_same_manifest "cp -a out of the mount preserves everything" "$T/m.src" "$T/m.cpout"
rm -rf "$T/cpout"

# ---- tar -------------------------------------------------------------------------
TAR_OPTS=(--format=posix --xattrs --xattrs-include='user.*')
mkdir "$M/tar"
br_check "tar c (host) | tar x (mount)" \
	bash -c 'tar "${@:3}" -C "$1" -cf - . | tar --xattrs --xattrs-include="user.*" -C "$2" -xf -' \
	_ "$S" "$M/tar" "${TAR_OPTS[@]}"
br_manifest "$M/tar" noctime >"$T/m.tar"
br_same_manifest "tar x onto the mount reproduces the tree" "$T/m.src" "$T/m.tar"
br_check "tar c of the mount is readable and complete" \
	bash -c 'tar "${@:2}" -C "$1" -cf - . | tar -tf - | wc -l | grep -qx '"$nfiles" \
	_ "$M/tar" "${TAR_OPTS[@]}"

# ---- rsync -----------------------------------------------------------------------
if command -v rsync >/dev/null; then
	br_check "rsync -aHX into the mount" rsync -aHX "$S/" "$M/rsync/"
	br_manifest "$M/rsync" noctime >"$T/m.rsync"
	br_same_manifest "rsync -aHX reproduces the tree" "$T/m.src" "$T/m.rsync"
	out=$(rsync -aHXc --dry-run --itemize-changes "$S/" "$M/rsync/" 2>&1)
	br_eq "rsync --checksum finds nothing to update" "" "$out"
	echo "changed" >>"$S/zz_extra/file"
	out=$(rsync -aHX --itemize-changes "$S/" "$M/rsync/" 2>&1 | grep -v '^\.d' | awk '{print $2}' | sort | tr '\n' ' ')
	br_eq "rsync after a change transfers only the changed file (and its links)" \
		"zz_extra/file zz_extra/hardlink zz_extra/sub/hardlink2 " "$out"
	br_check "rsync result equals the changed source" cmp "$S/zz_extra/file" "$M/rsync/zz_extra/sub/hardlink2"
	br_eq "hard links stay hard links after rsync update" 3 "$(stat -c %h "$M/rsync/zz_extra/file")"
else
	echo "rsync not installed: rsync part skipped (tests/setup.sh all installs it)"
fi

# ---- git -------------------------------------------------------------------------
if command -v git >/dev/null; then
	G=$M/repo
	export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
	export GIT_CONFIG_NOSYSTEM=1 HOME=$T
	br_check "git init" git init -q "$G"
	cp -a "$S/zz_extra" "$G/"
	rm -rf "$G/zz_extra/sub/deeper"	# git does not track empty directories
	for f in $(ls "$S" | head -n 40); do [ -f "$S/$f" ] && cp "$S/$f" "$G/"; done
	br_check "git add" git -C "$G" add -A
	br_check "git commit 1" git -C "$G" commit -q -m first
	echo more >>"$G/zz_extra/file"
	git -C "$G" rm -q zz_extra/dangling
	br_check "git commit 2" git -C "$G" commit -q -a -m second
	br_eq "git log shows 2 commits" 2 "$(git -C "$G" log --oneline | wc -l)"
	br_check "git fsck --full" git -C "$G" fsck --full --strict
	br_eq "git status clean" "" "$(git -C "$G" status --porcelain --untracked-files=no)"
	br_check "git gc (repack, many renames and unlinks)" git -C "$G" gc -q --aggressive
	br_check "git clone from the mount into the mount" git clone -q "$G" "$M/clone"
	br_check "git clone has the same tree" diff -r --no-dereference -x .git "$G" "$M/clone"
	br_eq "git clone HEAD equals origin HEAD" "$(git -C "$G" rev-parse HEAD)" "$(git -C "$M/clone" rev-parse HEAD)"
fi

# ---- ln, ln -s, mv, chmod, touch -d, truncate --------------------------------------
W=$M/ops
mkdir "$W"
printf 'content\n' >"$W/a"
br_check "ln" ln "$W/a" "$W/b"
br_eq "link count 2 after ln" 2 "$(stat -c %h "$W/a")"
br_eq "ln: same inode" "$(stat -c %i "$W/a")" "$(stat -c %i "$W/b")"
br_check "ln -s" ln -s a "$W/s"
br_eq "readlink" a "$(readlink "$W/s")"
br_eq "read through symlink" content "$(cat "$W/s")"
br_eq "symlink is a symlink" "symbolic link" "$(stat -c %F "$W/s")"
long_target=$(printf 'x%.0s' $(seq 1 1000))
br_check "ln -s with a 1000-byte target" ln -s "$long_target" "$W/longlink"
br_eq "readlink of the 1000-byte target" "$long_target" "$(readlink "$W/longlink")"
mkdir "$W/d1" "$W/d2"
ino=$(stat -c %i "$W/b")
br_check "mv file to another dir" mv "$W/b" "$W/d1/b"
br_check_fails "old name gone after mv" test -e "$W/b"
br_eq "mv keeps the inode" "$ino" "$(stat -c %i "$W/d1/b")"
printf 'other\n' >"$W/d2/victim"
br_check "mv over an existing file" mv "$W/d1/b" "$W/d2/victim"
br_eq "mv over existing: content is the moved file" content "$(cat "$W/d2/victim")"
br_eq "link count still 2 after renames" 2 "$(stat -c %h "$W/a")"
br_check "mv a directory" mv "$W/d2" "$W/d1/d2"
br_eq "file inside moved dir" content "$(cat "$W/d1/d2/victim")"
br_eq "parent link count after moving a subdir in (2 + 1 subdir)" 3 "$(stat -c %h "$W/d1")"
for mode in 640 000 755 1777 4755 2750; do
	chmod "$mode" "$W/a"
	br_eq "chmod $mode" "$((8#$mode))" "$((8#$(stat -c %a "$W/a")))"
done
chmod 644 "$W/a"
touch -d '2001-02-03 04:05:06.123456789' "$W/a"
br_eq "touch -d sets mtime with ns" 981173106.123456789 "$(stat -c %.9Y "$W/a")"
touch -d '2100-01-01 00:00:00' "$W/d1"
br_eq "touch -d beyond 2038 (64-bit time)" 4102444800 "$(stat -c %Y "$W/d1")"
touch -d '1960-01-01 00:00:00' "$W/d1/d2/victim"
br_eq "touch -d before 1970 (negative time)" -315619200 "$(stat -c %Y "$W/d1/d2/victim")"
touch -m -d @1000000000 "$W/a"
br_eq "touch -m @epoch" 1000000000 "$(stat -c %Y "$W/a")"
head -c 200000 /dev/urandom >"$W/t"
cp "$W/t" "$T/t.orig"
br_check "truncate up to 10M" truncate -s 10M "$W/t"
br_eq "size after truncate up" 10485760 "$(stat -c %s "$W/t")"
br_check "old data kept after truncate up" cmp -n 200000 "$W/t" "$T/t.orig"
br_check "zeros after the old end" cmp -n $((10485760 - 200000)) -i 200000:0 "$W/t" /dev/zero
br_check "truncate down to 100" truncate -s 100 "$W/t"
br_eq "size after truncate down" 100 "$(stat -c %s "$W/t")"
br_check "first 100 bytes kept" cmp -n 100 "$W/t" "$T/t.orig"
truncate -s 8192 "$W/t"
br_check "truncate down then up: zeros, not stale data" cmp -n 8092 -i 100:0 "$W/t" /dev/zero
br_check "truncate to 0" truncate -s 0 "$W/t"
br_eq "size 0" 0 "$(stat -c %s "$W/t")"

# ---- xattrs ----------------------------------------------------------------------
if command -v setfattr >/dev/null; then
	f=$W/a
	br_check "setfattr user.one" setfattr -n user.one -v hello "$f"
	br_eq "getfattr user.one" hello "$(getfattr --absolute-names --only-values -n user.one "$f")"
	br_check "setfattr binary value" setfattr -n user.bin -v 0x00010203fffe "$f"
	br_eq "getfattr binary value" "user.bin=0x00010203fffe" \
		"$(getfattr --absolute-names -e hex -n user.bin "$f" | grep '^user')"
	setfattr -n user.one -v replaced "$f"
	br_eq "setfattr replaces" replaced "$(getfattr --absolute-names --only-values -n user.one "$f")"
	big=$(head -c 3000 /dev/urandom | xxd -p | tr -d '\n')
	br_check "setfattr 3000-byte value" setfattr -n user.big -v "0x$big" "$f"
	br_eq "getfattr 3000-byte value" "user.big=0x$big" "$(getfattr --absolute-names -e hex -n user.big "$f" | grep '^user')"
	br_eq "list xattrs" "user.big user.bin user.one" \
		"$(getfattr --absolute-names -d -m '^user\.' "$f" 2>/dev/null | grep '^user' | cut -d= -f1 | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')"
	br_check "setfattr -x removes" setfattr -x user.bin "$f"
	br_check_fails "removed xattr is gone" getfattr --absolute-names -n user.bin "$f"
	br_check_fails "missing xattr fails" getfattr -n user.nonexistent "$f"
	br_check "xattr on a directory" setfattr -n user.d -v dirval "$W/d1"
	br_eq "xattr on a directory reads back" dirval "$(getfattr --absolute-names --only-values -n user.d "$W/d1")"
	br_eq "xattr follows hard link" replaced "$(getfattr --absolute-names --only-values -n user.one "$W/d1/d2/victim")"
fi

# ---- df ----------------------------------------------------------------------------
read -r size0 used0 avail0 <<<"$(df -B1 --output=size,used,avail "$M" | tail -n 1)"
br_log "df before: size=$size0 used=$used0 avail=$avail0"
br_check "df size > 0" test "$size0" -gt 0
br_check "df used <= size and avail <= size" test "$used0" -le "$size0" -a "$avail0" -le "$size0"
if [ -z "${BR_TEST_NOMOUNT_DIR:-}" ]; then
	img_bytes=$(stat -c %s "$BR_IMG")
	br_check "df size ($size0) within the image size ($img_bytes)" test "$size0" -le "$img_bytes"
	br_check "df size at least half the image size" test "$size0" -ge $((img_bytes / 2))
fi
br_check "write 100 MiB" dd if=/dev/urandom of="$M/100m" bs=1M count=100 conv=fsync status=none
sync
read -r size1 used1 avail1 <<<"$(df -B1 --output=size,used,avail "$M" | tail -n 1)"
br_log "df after 100 MiB: size=$size1 used=$used1 avail=$avail1"
br_check "df used grew by >= 95 MiB after writing 100 MiB ($used0 -> $used1)" \
	test $((used1 - used0)) -ge $((95 * 1048576))
br_check "df avail shrank by >= 95 MiB ($avail0 -> $avail1)" \
	test $((avail0 - avail1)) -ge $((95 * 1048576))
br_eq "df size unchanged" "$size0" "$size1"
sum100=$(sha256sum <"$M/100m")

# ---- remount: everything identical ------------------------------------------------
br_manifest "$M" >"$T/m.before" || br_die "manifest before remount"
br_remount
br_manifest "$M" >"$T/m.after" || br_die "manifest after remount"
br_same_manifest "full manifest identical after remount" "$T/m.before" "$T/m.after"
latest=$M/cp; [ -d "$M/rsync" ] && latest=$M/rsync	# rsync got the changed file
br_check "diff -r source vs mount copy after remount" diff -r --no-dereference "$S" "$latest"
br_eq "100 MiB file intact after remount" "$sum100" "$(sha256sum <"$M/100m")"
if command -v git >/dev/null; then
	br_check "git fsck after remount" git -C "$M/repo" fsck --full --strict
fi
br_check "rm -rf of the whole tree" rm -rf "$M/cp" "$M/tar" "$M/rsync" "$M/repo" "$M/clone"
br_eq "tree gone" "100m ops" "$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"
br_remount
br_eq "deletion persists after remount" "100m ops" "$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"

br_finish
