/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The filesystem: the map (core/map) over the store (core/store), with
 * operations that mirror the FUSE low-level API but include no FUSE header.
 *
 * Every operation returns 0 (or a byte count) or -errno.  Permission checks
 * are the caller's (the daemon mounts with default_permissions, so the
 * kernel checks modes, ownership and the sticky bit); these functions only
 * enforce what a filesystem must (types, emptiness, name lengths, loops).
 *
 * Every change is appended to the log as a record (format.h: BR_REC_DATA
 * and the metadata records) before it becomes visible in the map, in the
 * same order as the log, so replaying the log at open rebuilds exactly the
 * tree the mounted filesystem showed.  A change is durable once
 * br_fs_fsync() (or br_fs_syncfs()) returned 0 after it.
 *
 * Inode numbers are 64-bit and never reused; the root is BR_ROOT_INO (1).
 * Lookup counts follow FUSE: lookup, mknod, mkdir, symlink and link add one
 * to the inode they return; br_fs_forget() drops them; an inode with no
 * name and no lookups left is freed.
 *
 * Threads: every function may be called from any number of threads at once
 * except br_fs_open/br_fs_close.
 */
#ifndef BR_FSYS_H
#define BR_FSYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "uring.h"

struct br_fs;

struct br_fs_options {
	unsigned nbuf;		/* ring buffers, 2..64; 0 = default (4) */
	uint32_t buf_size;	/* bytes per ring buffer, multiple of 4096,
				 * 64 KiB..64 MiB; 0 = the superblock's */
	enum br_write_mode mode; /* default BR_WRITE_TAIL */
	uint32_t root_uid;	/* owner of the root directory if the log */
	uint32_t root_gid;	/* does not have one yet (first mount) */
	/* Background checkpoints (core/checkpoint.h): after ckpt_bytes bytes
	 * of log (0 = 256 MiB; UINT64_MAX = never by size) or ckpt_secs
	 * seconds after a change (0 = 30; UINT32_MAX = never by time).
	 * br_fs_close always writes one if anything changed. */
	uint64_t ckpt_bytes;
	uint32_t ckpt_secs;
	/* Load the tree and nothing else (fsck -n): no lock, no store, no
	 * root creation, nothing written.  Only br_fs_info, br_fs_getattr,
	 * br_fs_lookup, br_fs_readdir, br_fs_readlink, br_fs_getxattr,
	 * br_fs_listxattr, br_fs_read and core/fsck may be used. */
	bool read_only;
	/* With read_only: load the newest checkpoint only, ignoring the log
	 * after its cut (tests and diagnostics: what the checkpoint holds). */
	bool ckpt_only;
	/* Do not give freed segments back to the device (-o discard=off);
	 * by default they are punched out of an image file / discarded on a
	 * block device (core/segment.h). */
	bool no_discard;
	/* Cleaner threshold (core/cleaner.h): the background cleaner works
	 * while fewer than this percentage of the log's segments are free,
	 * 1..90 (tests; the daemon has no option for it); 0 = the default,
	 * BR_CLEAN_LOW_ABOVE segments above the user reserve. */
	unsigned clean_low;
	/* Run the cleaner at all (core/cleaner.h; the daemon sets it unless
	 * mounted with -o cleaner=off).  Off: partly dead segments are not
	 * reclaimed. */
	bool cleaner;
	/* Test hook: fault injection in the device writes (see struct
	 * br_uring_config.fault).  NULL in production. */
	int (*fault)(void *fault_ctx, uint64_t off, uint32_t len, int res);
	void *fault_ctx;
};

/*
 * Open the image (file or block device), lock it (flock LOCK_EX|LOCK_NB),
 * read the superblock, replay the log and start the store.  `why` (may be
 * NULL) gets a one-line reason on failure.  Errors: -ENOENT and other
 * open errors, -EBUSY (already mounted: the lock is held), BR_ERR_CORRUPT
 * (not a bringfs image, a damaged superblock with no valid backup, or a log
 * whose records contradict each other), BR_ERR_UNSUPPORTED (newer format),
 * -EROFS (an ro_compat feature this code cannot write), -ENOMEM.
 */
int br_fs_open(const char *image, const struct br_fs_options *opt,
	       struct br_fs **out, char *why, size_t why_len);

/* Log the times of files written since their last record, write a
 * checkpoint (if anything changed since the last one), drain the store
 * (every record reaches the disk, one device flush), unlock and free.
 * Returns the store's latched error (-EIO, -ENOSPC), the checkpoint's
 * error, or 0. */
int br_fs_close(struct br_fs *fs);

/* Counters, for tests and the daemon's debug output. */
struct br_fs_info {
	uint64_t replayed_buffers;	/* buffers applied at open */
	uint64_t replayed_records;
	uint64_t inodes;
	uint64_t log_start, log_end;	/* bytes */
	uint64_t log_next;		/* where the next buffer goes */
};
void br_fs_info(struct br_fs *fs, struct br_fs_info *info);

/* ---- names ---- */

/* Find `name` in `parent`; one lookup count on success.  -ENOENT, -ENOTDIR,
 * -ENAMETOOLONG. */
int br_fs_lookup(struct br_fs *fs, uint64_t parent, const char *name,
		 struct stat *st);

/* Drop n lookup counts. */
void br_fs_forget(struct br_fs *fs, uint64_t ino, uint64_t n);

/* Who creates: owner of new inodes (gid is replaced by the parent's when
 * the parent is setgid, as on ext4). */
struct br_cred {
	uint32_t uid, gid;
};

/* Create a regular file, fifo, socket or device node (mode includes the
 * type; umask already applied); one lookup count.  -EEXIST, -ENOENT,
 * -ENOTDIR, -ENAMETOOLONG, -EINVAL (bad type), -EIO/-ENOSPC (log). */
int br_fs_mknod(struct br_fs *fs, uint64_t parent, const char *name,
		uint32_t mode, uint64_t rdev, const struct br_cred *cr,
		struct stat *st);
int br_fs_mkdir(struct br_fs *fs, uint64_t parent, const char *name,
		uint32_t mode, const struct br_cred *cr, struct stat *st);
/* target: 1..4095 bytes (-ENAMETOOLONG). */
int br_fs_symlink(struct br_fs *fs, uint64_t parent, const char *name,
		  const char *target, const struct br_cred *cr,
		  struct stat *st);
/* Copy the target (not NUL-terminated) into buf; returns its length, at
 * most size.  -EINVAL if ino is not a symlink. */
ssize_t br_fs_readlink(struct br_fs *fs, uint64_t ino, char *buf,
		       size_t size);

/* New name for ino (not a directory: -EPERM); one lookup count. */
int br_fs_link(struct br_fs *fs, uint64_t ino, uint64_t newparent,
	       const char *newname, struct stat *st);
/* -ENOENT, -EISDIR (unlink of a directory), -ENOTDIR (rmdir of a file),
 * -ENOTEMPTY. */
int br_fs_unlink(struct br_fs *fs, uint64_t parent, const char *name);
int br_fs_rmdir(struct br_fs *fs, uint64_t parent, const char *name);

#define BR_FS_RENAME_NOREPLACE 1u	/* = RENAME_NOREPLACE */
#define BR_FS_RENAME_EXCHANGE 2u	/* = RENAME_EXCHANGE */
/* rename(2) / renameat2(2) semantics: -EINVAL (unknown or both flags, a
 * directory moved into its own subtree), -EEXIST (NOREPLACE), -ENOENT,
 * -ENOTDIR, -EISDIR, -ENOTEMPTY. */
int br_fs_rename(struct br_fs *fs, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags);

/* Call fill for each entry after offset `off` (0: from the start, "." and
 * ".." first) until it returns nonzero; `next` is the offset to resume
 * after that entry.  Offsets stay valid while the directory changes.
 * fill runs under the map lock: it must not block or call back in. */
typedef int (*br_fs_fill_fn)(void *ctx, const char *name, uint64_t ino,
			     uint32_t type, uint64_t next);
int br_fs_readdir(struct br_fs *fs, uint64_t ino, uint64_t off,
		  br_fs_fill_fn fill, void *ctx);

/* The same with each entry's attributes (FUSE readdirplus).  fill returns
 * nonzero if it could not take the entry; every entry it took, except "."
 * and "..", counts as a lookup (br_fs_forget it like one). */
typedef int (*br_fs_fillplus_fn)(void *ctx, const char *name,
				 const struct stat *st, uint64_t next);
int br_fs_readdirplus(struct br_fs *fs, uint64_t ino, uint64_t off,
		      br_fs_fillplus_fn fill, void *ctx);

/* ---- attributes ---- */

int br_fs_getattr(struct br_fs *fs, uint64_t ino, struct stat *st);

#define BR_SET_MODE (1u << 0)
#define BR_SET_UID (1u << 1)
#define BR_SET_GID (1u << 2)
#define BR_SET_SIZE (1u << 3)
#define BR_SET_ATIME (1u << 4)		/* to sa->atime */
#define BR_SET_MTIME (1u << 5)		/* to sa->mtime */
#define BR_SET_ATIME_NOW (1u << 6)
#define BR_SET_MTIME_NOW (1u << 7)
#define BR_SET_CTIME (1u << 8)		/* to sa->ctime */

struct br_setattr {
	unsigned valid;			/* BR_SET_* */
	uint32_t mode;			/* permission bits (type ignored) */
	uint32_t uid, gid;
	uint64_t size;
	struct timespec atime, mtime, ctime;
};
/* -EISDIR / -EINVAL (size of a non-regular file), -EFBIG. st gets the new
 * attributes. */
int br_fs_setattr(struct br_fs *fs, uint64_t ino, const struct br_setattr *sa,
		  struct stat *st);

/* ---- data ---- */

/* Bytes read (short only at end of file); holes read as zeros.  Updates
 * atime the relatime way (when older than mtime/ctime or a day old). */
ssize_t br_fs_read(struct br_fs *fs, uint64_t ino, void *buf, size_t size,
		   uint64_t off);
/* Bytes written: all of them, or fewer if the log failed part way (then
 * a later call returns the error).  -EISDIR, -EINVAL, -EFBIG, -EIO, -ENOSPC. */
ssize_t br_fs_write(struct br_fs *fs, uint64_t ino, const void *buf,
		    size_t size, uint64_t off);

/* Log the file's pending time updates (close(2) calls this). */
int br_fs_flush(struct br_fs *fs, uint64_t ino);
/* Make the inode's data and the records that reach it (its names' creation
 * included) durable.  -EIO once the log failed. */
int br_fs_fsync(struct br_fs *fs, uint64_t ino, bool datasync);
/* Everything committed so far. */
int br_fs_syncfs(struct br_fs *fs);

#define BR_FALLOC_KEEP_SIZE 1u		/* = FALLOC_FL_KEEP_SIZE */
#define BR_FALLOC_PUNCH_HOLE 2u		/* = FALLOC_FL_PUNCH_HOLE */
/* mode 0 / KEEP_SIZE: reserve (the log needs no preallocation: only the
 * size grows and free space is checked, -ENOSPC); PUNCH_HOLE (needs
 * KEEP_SIZE): drop the range.  Other modes: -EOPNOTSUPP. */
int br_fs_fallocate(struct br_fs *fs, uint64_t ino, unsigned mode,
		    uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE (others -EINVAL); -ENXIO past the end. */
int br_fs_lseek(struct br_fs *fs, uint64_t ino, uint64_t off, int whence,
		uint64_t *res);

int br_fs_statfs(struct br_fs *fs, struct statvfs *sv);

/* ---- extended attributes ---- */

#define BR_FS_XATTR_CREATE 1	/* = XATTR_CREATE */
#define BR_FS_XATTR_REPLACE 2	/* = XATTR_REPLACE */
/* -EEXIST, -ENODATA, -ERANGE (empty name or longer than 255), -E2BIG
 * (value larger than 64 KiB), -EINVAL (unknown flags), -EOPNOTSUPP for
 * the system.* namespace (POSIX ACLs are not supported). */
int br_fs_setxattr(struct br_fs *fs, uint64_t ino, const char *name,
		   const void *value, size_t size, int flags);
/* size 0: the value's size; -ERANGE if size is too small; -ENODATA. */
/* A virtual xattr of the root directory (not listed by listxattr): the
 * space and cleaner state as text, "name value" lines: free_segments,
 * total_segments, live_ratio, user_bytes, device_bytes,
 * write_amplification (device / user bytes since mount), cleaner,
 * cleaner_runs, cleaned_segments, moved_bytes, cleaner_copied_bytes,
 * cleaner_ckpt_bytes, device_flushes, log_buffers (buffers the log
 * wrote), checkpoints (written by this mount), checkpoint_blob_bytes
 * (the newest one's), checkpoint_guess_bytes (what the next one is
 * expected to take, br_ckpt_guess), user_reserve_segments (free segments
 * user data leaves, fs_user_reserve), dead_segments (no live data, not
 * free yet), checkpoint_wait_segments (of those, the ones waiting for a
 * checkpoint), open_segments (the log's current and next, the cleaner's
 * head; struct br_seg_space).
 *   getfattr --only-values -n user.bringfs.stats MOUNTPOINT */
#define BR_STATS_XATTR "user.bringfs.stats"

ssize_t br_fs_getxattr(struct br_fs *fs, uint64_t ino, const char *name,
		       void *buf, size_t size);
ssize_t br_fs_listxattr(struct br_fs *fs, uint64_t ino, char *buf,
			size_t size);
int br_fs_removexattr(struct br_fs *fs, uint64_t ino, const char *name);

#endif /* BR_FSYS_H */
