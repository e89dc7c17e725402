#!/bin/bash
# Mount-test harness for bringfs.  Sourced by tests/mount/test_*.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     br_setup "$@"        # $1 = mkfs.bringfs, $2 = bringfs (optional)
#     ... use $BR_MNT, $BR_TMP, br_check, br_remount ...
#     br_finish            # prints "N passed, N failed", exits 0 or 1
#
# br_setup makes a temp dir (mktemp -d, under $BR_TMPDIR or $TMPDIR or /tmp),
# formats an image there, mounts it with `bringfs -f` in the background and
# waits (bounded) until /proc/self/mounts shows the mountpoint as
# fuse.bringfs.  A trap on EXIT/INT/TERM unmounts (fusermount3 -u, retried;
# -uz lazy as the last resort), kills a daemon that is still alive after the
# unmount and deletes the temp dir: a test leaves no mount, daemon or file
# behind even when it fails.  (BR_KEEP=1 keeps the temp dir for debugging.)
#
# Binaries: $BR_MKFS/$BR_BRINGFS when set (to override what meson passes),
# else $1/$2 of br_setup (meson passes its build dir's), else the repo's
# build/mkfs/mkfs.bringfs and build/fs/bringfs.
#
# Exit 77 (meson SKIP) with the reason when /dev/fuse is missing or cannot be
# opened, fusermount3 is missing, or the binaries are not built.
#
# BR_TEST_NOMOUNT_DIR=DIR: no mkfs, no mount: the tests run in a fresh
#   subdirectory of DIR (a host directory or any mounted filesystem), and
#   br_remount only syncs and drops caches.  For validating the tests
#   themselves against a known-good filesystem.
# BR_IMAGE_SIZE: image size for mkfs.bringfs -s (default 4G; set by each test
#   before br_setup when it needs more).  BR_MOUNT_OPTS: extra -o options.
#
# br_remount: unmount cleanly (the daemon must exit with status 0), mount the
# same image again.  $BR_TMP/remount is a stand-alone command doing the same,
# for C programs (test_model) that remount in the middle of their run.

BR_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BR_REPO=$(cd "$BR_LIB_DIR/../.." && pwd)
BR_PASS=0
BR_FAIL=0
BR_MOUNTED=0

br_log() { echo "[$(date +%T)] $*"; }
br_skip() { echo "SKIP: $*"; exit 77; }
br_die() {
	echo "FATAL: $*" >&2
	br_show_daemon_log
	exit 1
}

br_show_daemon_log() {
	if [ -n "${BR_TMP:-}" ] && [ -s "$BR_TMP/daemon.log" ]; then
		echo "---- bringfs daemon log (last 40 lines) ----" >&2
		tail -n 40 "$BR_TMP/daemon.log" >&2
		echo "--------------------------------------------" >&2
	fi
}

# ---- assertions -------------------------------------------------------------

br_pass() { BR_PASS=$((BR_PASS + 1)); echo "ok   - $*"; }
br_failed() { BR_FAIL=$((BR_FAIL + 1)); echo "FAIL - $*"; }

# br_check DESC CMD [ARGS...]: CMD must succeed.
br_check() {
	local desc=$1; shift
	local out
	if out=$("$@" 2>&1); then
		br_pass "$desc"
	else
		br_failed "$desc (command: $*)"
		[ -n "$out" ] && printf '%s\n' "$out" | head -n 30 | sed 's/^/    /'
	fi
}

# br_check_fails DESC CMD [ARGS...]: CMD must fail.
br_check_fails() {
	local desc=$1; shift
	if "$@" >/dev/null 2>&1; then
		br_failed "$desc (expected failure: $*)"
	else
		br_pass "$desc"
	fi
}

# br_eq DESC EXPECTED ACTUAL
br_eq() {
	if [ "$2" = "$3" ]; then
		br_pass "$1"
	else
		br_failed "$1: expected '$2', got '$3'"
	fi
}

# br_run CMD [ARGS...]: run a long test program in the background and wait
# for it, so that INT/TERM reach the trap at once (bash defers traps while a
# foreground child runs); the cleanup kills it before unmounting.
br_run() {
	"$@" &
	BR_CHILD=$!
	wait $BR_CHILD
	local rc=$?
	BR_CHILD=
	return $rc
}

# br_finish: closing line, exit status.
br_finish() {
	echo "$BR_PASS passed, $BR_FAIL failed"
	[ "$BR_FAIL" = 0 ] && exit 0
	exit 1
}

# ---- mount / unmount ----------------------------------------------------------

# br_is_mounted: is $BR_MNT in /proc/self/mounts as fuse.bringfs?
br_is_mounted() {
	awk -v m="$BR_MNT" '$2 == m && $3 == "fuse.bringfs" { f = 1 } END { exit !f }' \
		/proc/self/mounts
}

# any mount at all on $BR_MNT (also a dead "transport endpoint" one)
br_any_mount() {
	awk -v m="$BR_MNT" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts
}

br_daemon_pid() { cat "$BR_TMP/daemon.pid" 2>/dev/null; }

br_daemon_alive() {
	local pid
	pid=$(br_daemon_pid) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# br_mount: start the daemon in the foreground mode, in the background, and
# wait until the mount appears.  The wrapper subshell records its exit status
# in daemon.rc, so that unmount can check the daemon ended cleanly.
br_mount() {
	[ -n "${BR_TEST_NOMOUNT_DIR:-}" ] && return 0
	rm -f "$BR_TMP/daemon.pid" "$BR_TMP/daemon.rc"
	local opts=()
	[ -n "${BR_MOUNT_OPTS:-}" ] && opts=(-o "$BR_MOUNT_OPTS")
	echo "==== mount $(date +%T) ====" >>"$BR_TMP/daemon.log"
	(
		"$BR_BRINGFS" -f "${opts[@]}" "$BR_IMG" "$BR_MNT" \
			</dev/null >>"$BR_TMP/daemon.log" 2>&1 &
		echo $! >"$BR_TMP/daemon.pid"
		wait $!
		echo $? >"$BR_TMP/daemon.rc"
	) </dev/null >/dev/null 2>&1 9>&- &	# 9: the remount lock, not for the daemon
	local i
	for i in $(seq 1 300); do	# 30 s
		if br_is_mounted; then
			BR_MOUNTED=1
			return 0
		fi
		if [ -e "$BR_TMP/daemon.rc" ]; then
			br_die "bringfs exited with status $(cat "$BR_TMP/daemon.rc") before the mount appeared"
		fi
		sleep 0.1
	done
	br_die "bringfs did not mount $BR_MNT within 30 s"
}

# br_unmount: fusermount3 -u (retried while busy), then the daemon must exit
# with status 0 within 60 s.  Returns 1 (after a message) when it did not.
br_unmount() {
	[ -n "${BR_TEST_NOMOUNT_DIR:-}" ] && return 0
	local i rc
	cd / || true
	for i in $(seq 1 50); do
		br_any_mount || break
		fusermount3 -u "$BR_MNT" 2>/dev/null && break
		sleep 0.2
	done
	if br_any_mount; then
		echo "br_unmount: $BR_MNT still busy after 10 s" >&2
		return 1
	fi
	BR_MOUNTED=0
	for i in $(seq 1 600); do	# 60 s: the daemon may flush a checkpoint
		[ -e "$BR_TMP/daemon.rc" ] && break
		sleep 0.1
	done
	if [ ! -e "$BR_TMP/daemon.rc" ]; then
		echo "br_unmount: bringfs still running 60 s after unmount" >&2
		return 1
	fi
	rc=$(cat "$BR_TMP/daemon.rc")
	if [ "$rc" != 0 ]; then
		echo "br_unmount: bringfs exited with status $rc after unmount" >&2
		br_show_daemon_log
		return 1
	fi
	return 0
}

br_drop_caches() {
	sync
	[ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	return 0
}

# br_remount: clean unmount + mount again.  Fatal when the unmount is not clean.
br_remount() {
	if [ -n "${BR_TEST_NOMOUNT_DIR:-}" ]; then
		br_drop_caches
		return 0
	fi
	br_unmount || br_die "unmount for remount failed"
	br_mount
}

# ---- cleanup ------------------------------------------------------------------

br_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	cd / || true
	if [ -n "${BR_CHILD:-}" ] && kill -0 "$BR_CHILD" 2>/dev/null; then
		kill -TERM "$BR_CHILD" 2>/dev/null
		wait "$BR_CHILD" 2>/dev/null
	fi
	# helpers a test started in the background (checksums ...)
	local p
	for p in ${BR_BG_PIDS:-}; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	# a $BR_TMP/remount the child started may still be mounting: wait for it
	# (it holds the lock) so that it cannot mount again behind our back
	if [ -n "${BR_TMP:-}" ] && [ -d "$BR_TMP" ] && command -v flock >/dev/null; then
		exec 9>"$BR_TMP/remount.lock"
		flock -w 90 9 || echo "cleanup: a remount is still running after 90 s" >&2
	fi
	if [ -n "${BR_TMP:-}" ] && [ -z "${BR_TEST_NOMOUNT_DIR:-}" ]; then
		local i
		for i in $(seq 1 25); do
			br_any_mount || break
			fusermount3 -u "$BR_MNT" 2>/dev/null && break
			sleep 0.2
		done
		if br_any_mount; then
			echo "cleanup: lazy unmount of $BR_MNT" >&2
			fusermount3 -uz "$BR_MNT" 2>/dev/null || umount -l "$BR_MNT" 2>/dev/null
		fi
		# the daemon should exit by itself after the unmount
		for i in $(seq 1 100); do
			br_daemon_alive || break
			sleep 0.1
		done
		if br_daemon_alive; then
			echo "cleanup: killing leftover bringfs $(br_daemon_pid)" >&2
			kill -TERM "$(br_daemon_pid)" 2>/dev/null
			sleep 1
			kill -KILL "$(br_daemon_pid)" 2>/dev/null
		fi
		[ $rc != 0 ] && [ $rc != 77 ] && br_show_daemon_log
	fi
	if [ -n "${BR_TMP:-}" ] && [ -d "$BR_TMP" ]; then
		if [ "${BR_KEEP:-0}" = 1 ]; then
			echo "cleanup: keeping $BR_TMP (BR_KEEP=1)" >&2
		else
			rm -rf --one-file-system "$BR_TMP"
		fi
	fi
	if [ -n "${BR_TEST_NOMOUNT_DIR:-}" ] && [ -n "${BR_MNT:-}" ] && [ -d "$BR_MNT" ]; then
		rm -rf --one-file-system "$BR_MNT"
	fi
	exit $rc
}

# ---- setup ----------------------------------------------------------------------

# br_setup [MKFS [BRINGFS]]
br_setup() {
	BR_MKFS=${BR_MKFS:-${1:-$BR_REPO/build/mkfs/mkfs.bringfs}}
	BR_BRINGFS=${BR_BRINGFS:-${2:-$BR_REPO/build/fs/bringfs}}
	BR_IMAGE_SIZE=${BR_IMAGE_SIZE:-4G}
	# absolute: br_unmount and the remount command run from /
	[ -e "$BR_MKFS" ] && BR_MKFS=$(readlink -f "$BR_MKFS")
	[ -e "$BR_BRINGFS" ] && BR_BRINGFS=$(readlink -f "$BR_BRINGFS")

	if [ -z "${BR_TEST_NOMOUNT_DIR:-}" ]; then
		[ -e /dev/fuse ] || br_skip "/dev/fuse does not exist"
		( exec 3<>/dev/fuse ) 2>/dev/null || br_skip "/dev/fuse cannot be opened by uid $(id -u)"
		command -v fusermount3 >/dev/null || br_skip "fusermount3 not installed (package fuse3)"
		[ -x "$BR_MKFS" ] || br_skip "mkfs.bringfs not built: $BR_MKFS"
		[ -x "$BR_BRINGFS" ] || br_skip "bringfs not built: $BR_BRINGFS"
	fi

	BR_TMP=$(mktemp -d -p "${BR_TMPDIR:-${TMPDIR:-/tmp}}" bringfs-test.XXXXXX) ||
		br_die "mktemp -d failed"
	BR_TMP=$(cd "$BR_TMP" && pwd -P)
	trap br_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	if [ -n "${BR_TEST_NOMOUNT_DIR:-}" ]; then
		[ -d "$BR_TEST_NOMOUNT_DIR" ] || br_die "BR_TEST_NOMOUNT_DIR=$BR_TEST_NOMOUNT_DIR is not a directory"
		BR_MNT=$(mktemp -d -p "$BR_TEST_NOMOUNT_DIR" bringfs-nomount.XXXXXX)
		BR_MNT=$(cd "$BR_MNT" && pwd -P)
		BR_IMG=
		br_log "NOMOUNT mode: testing the plain directory $BR_MNT (no bringfs)"
	else
		BR_IMG=$BR_TMP/image
		BR_MNT=$BR_TMP/mnt
		mkdir "$BR_MNT"
		# BR_MKFS_OPTS: more mkfs options (word-split), e.g. a geometry
		# shellcheck disable=SC2086
		"$BR_MKFS" -f -q -s "$BR_IMAGE_SIZE" ${BR_MKFS_OPTS:-} "$BR_IMG" >"$BR_TMP/mkfs.log" 2>&1 ||
			{ cat "$BR_TMP/mkfs.log" >&2; br_die "mkfs.bringfs -s $BR_IMAGE_SIZE ${BR_MKFS_OPTS:-} $BR_IMG failed"; }
		br_mount
		br_log "mounted $BR_IMG ($BR_IMAGE_SIZE) on $BR_MNT"
	fi

	# stand-alone remount command for C programs
	{
		echo '#!/bin/bash'
		printf 'export BR_TMP=%q BR_MNT=%q BR_IMG=%q BR_BRINGFS=%q BR_MOUNT_OPTS=%q BR_TEST_NOMOUNT_DIR=%q\n' \
			"$BR_TMP" "$BR_MNT" "$BR_IMG" "$BR_BRINGFS" "${BR_MOUNT_OPTS:-}" "${BR_TEST_NOMOUNT_DIR:-}"
		printf 'exec bash %q __remount\n' "$BR_LIB_DIR/lib.sh"
	} >"$BR_TMP/remount"
	chmod +x "$BR_TMP/remount"
	export BR_TMP BR_MNT BR_IMG BR_MKFS BR_BRINGFS
}

# ---- manifest ---------------------------------------------------------------------

# br_manifest DIR [noctime]: one line per entry, sorted, relative paths:
# path type mode uid gid nlink size mtime(ns) ctime(ns) link-group
# symlink-target sha256 xattrs(user.*).  The link group is the first path
# (sorted) sharing the entry's inode, so hard links are compared without
# comparing inode numbers.  Directory sizes are left out (POSIX does not
# define them).  Batched (one sha256sum/getfattr per many files): fast on
# trees of thousands of files.
br_manifest() {
	local dir=$1 what=${2:-full} t
	t=$(mktemp -d -p "${BR_TMP:-/tmp}" manifest.XXXXXX) || return 1
	(
		cd "$dir" || exit 1
		find . -mindepth 1 -printf '%i\t%p\t%y\t%m\t%U\t%G\t%n\t%s\t%T@\t%C@\t%l\n' \
			>"$t/list" || exit 1
		find . -mindepth 1 -type f -print0 | xargs -0 -r sha256sum >"$t/sums" || exit 1
		: >"$t/xattrs"
		if command -v getfattr >/dev/null; then
			# one "path<TAB>name=value" line per attribute, sorted:
			# listxattr order is not defined
			getfattr -R -h -d -m '^user\.' -e hex --absolute-names . 2>/dev/null |
				awk '/^# file: / { f = substr($0, 9); next } /^$/ { next }
					{ print f "\t" $0 }' | LC_ALL=C sort >"$t/xattrs"
		fi
		LC_ALL=C awk -F '\t' -v what="$what" -v sums="$t/sums" -v xat="$t/xattrs" '
		BEGIN {
			OFS = "\t"
			while ((getline line < sums) > 0)
				sum[substr(line, 67)] = substr(line, 1, 64)
			while ((getline line < xat) > 0) {
				i = index(line, "\t")
				f = substr(line, 1, i - 1)
				xa[f] = xa[f] substr(line, i + 1) ","
			}
		}
		{
			p = $2; size = $8; ctime = $10
			if ($3 == "d") size = "-"
			if (what == "noctime") ctime = "-"
			s = (p in sum) ? sum[p] : "-"
			x = (p in xa) ? xa[p] : "-"
			print p, $3, $4, $5, $6, $7, size, $9, ctime, $1, $11, s, x
		}' "$t/list" | LC_ALL=C sort -t "$(printf '\t')" -k1,1 |
			LC_ALL=C awk -F '\t' 'BEGIN { OFS = "\t" }
				{ if (!($10 in grp)) grp[$10] = $1; $10 = "grp=" grp[$10]; print }'
	)
	local rc=$?
	rm -rf "$t"
	return $rc
}

# br_same_manifest DESC FILE_A FILE_B: identical, else print the diff.
br_same_manifest() {
	if cmp -s "$2" "$3"; then
		br_pass "$1 ($(wc -l <"$2") entries)"
	else
		br_failed "$1"
		diff "$2" "$3" | head -n 40 | sed 's/^/    /'
	fi
}

# ---- stand-alone remount (used by $BR_TMP/remount) ------------------------------
if [ "${1:-}" = __remount ] && [ "${BASH_SOURCE[0]}" = "$0" ]; then
	if command -v flock >/dev/null; then
		exec 9>"$BR_TMP/remount.lock"
		flock 9
	fi
	br_remount
	exit 0
fi
