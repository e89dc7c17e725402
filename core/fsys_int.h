/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Internals shared by core/fsys.c (operations), core/apply.c (records ->
 * map) and core/replay.c (log scan).  Not for use outside core/.
 */
#ifndef BR_FSYS_INT_H
#define BR_FSYS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "format.h"
#include "fsys.h"
#include "map.h"
#include "ring.h"
#include "store.h"
#include "super.h"

/* Striped per-inode locks.  A checkpoint holds all of them plus ns_lock
 * and map_lock; 32 keeps that under ThreadSanitizer's limit of 64 locks
 * held by one thread (so the concurrent tests keep lock-order checking),
 * and is far more than the FUSE worker threads that contend for them. */
#define FS_INODE_LOCK_BITS 5
#define FS_INODE_LOCKS (1u << FS_INODE_LOCK_BITS)

/* One buffer's worth of "these chunks have pending extents in me". */
struct fs_pending {
	uint64_t ino;
	uint64_t key;		/* chunk */
};

struct fs_slot_list {
	struct fs_pending *v;
	size_t n, cap;
};

/*
 * Lock order: ns_lock -> ilock[stripe] (at most one) -> map_lock.
 *
 *  ns_lock   serialises namespace changes (create, link, unlink, rename):
 *            check, reserve, apply happen in one order, so the log order is
 *            the order the map saw.  Held across br_store_reserve (which can
 *            wait for a buffer to complete), never across br_store_sync.
 *  ilock[]   serialises changes of one inode's data, size and xattrs
 *            (write, setattr, fallocate, xattrs, time records), so records
 *            about an inode enter the log in the order they are applied.
 *            Striped by ino; never two at once.
 *  map_lock  the map: every br_inode field (pins: atomic, see below), the
 *            directory tables, the extent maps, slot[].  Held for memory
 *            work only: never across reserve, I/O or a wait.  The store's
 *            completion thread takes it (write) in on_complete; since
 *            nobody waits for the ring while holding it, that cannot
 *            deadlock.
 *
 * br_inode.pins counts operations that use an inode after dropping
 * map_lock; it is changed with atomics while holding map_lock (read or
 * write).  An inode is freed (under map_lock write) only when it has no
 * name, no lookup count and no pins; `doomed` says a freeing check is due
 * when the last pin goes.
 */
struct br_fs {
	pthread_mutex_t ns_lock;
	pthread_mutex_t ilock[FS_INODE_LOCKS];
	pthread_rwlock_t map_lock;
	_Atomic bool io_failed;			/* a log write failed for good */
	struct br_map map;			/* map_lock */
	struct fs_slot_list slot[BR_RING_MAX_BUFS]; /* map_lock */

	struct br_store *store;		/* set once at open; NULL when
					 * opened read_only */
	int fd;				/* O_RDWR|O_DIRECT, flock'ed, store's */
	int rfd;			/* O_RDONLY|O_DIRECT, for reads */
	struct br_super sb;		/* feat_incompat: changed by
					 * fs_feature_set under map_lock
					 * (write) and feat_lock */
	pthread_mutex_t feat_lock;	/* one superblock feature update at
					 * a time */
	uint64_t fsid;
	uint32_t max_data;		/* data bytes per record */
	bool replaying;			/* open only: single-threaded */
	bool ckpt_only;			/* br_fs_options.ckpt_only */

	uint64_t replayed_buffers;	/* set at open */
	uint64_t replayed_records;
	struct br_ckpt *ckpt;		/* core/checkpoint.c; its own locks */
	struct br_segtab *segs;		/* core/segment.h; its own lock (a
					 * leaf, after map_lock) */
	bool discard;			/* -o discard: give freed segments
					 * back to the device */
	struct br_cleaner *cleaner;	/* core/cleaner.h; its own locks */
	/* bytes users asked to write (br_fs_write), for the write
	 * amplification in bringfs.stats; relaxed, statistics only */
	_Atomic uint64_t user_bytes;
	/* bytes of log room above the user reserve that space_check gave
	 * writes not yet copied into the ring: concurrent writers, and a
	 * cleaning pass's budget, count them as taken */
	_Atomic uint64_t granted;
};

/* Say a message on stderr ("bringfs: error: ..." for LOG_ERR and worse,
 * "bringfs: warning: ..." otherwise) and in syslog at `level`. */
void fs_say(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A device write failed for good (err: -errno): say so once, on stderr
 * and in syslog, with what was written (`what`, at byte `addr`) and that
 * the filesystem is read-only from now on.  The caller has latched the
 * error in the store (br_store_fail), or the store did. */
void fs_io_failed(struct br_fs *fs, const char *what, uint64_t addr,
		  int err);

/* Segments user data leaves free (core/fsys.c, space_check). */
uint64_t fs_user_reserve(struct br_fs *fs);

/* Test hook: rename calls it once, after it peeked whether its target
 * exists and before it takes ns_lock (the window its retry covers). */
extern void (*br_fs_rename_hook)(struct br_fs *fs);

/* Bytes space_check has granted to writes in progress (relaxed). */
static inline uint64_t fs_granted(struct br_fs *fs)
{
	return atomic_load_explicit(&fs->granted, memory_order_relaxed);
}

/*
 * Set incompat feature bits in both superblocks, durably, then in
 * fs->sb (format.h: before the first record or blob that needs them).
 * Updates are serialised, so two features set at once both reach the
 * disk.  No filesystem lock held.  0 or -errno.
 */
int fs_feature_set(struct br_fs *fs, uint64_t bits);

/* One of the cleaner's moves, with the segment its bytes were read from
 * and that segment's reuse generation then (segment.h). */
struct fs_move {
	struct br_reloc m;
	uint64_t seg, gen;
};

/* Bytes of one BR_REC_RELOCS record the cleaner writes, at most. */
#define FS_RELOCS_MAX 4096u

/*
 * Log and apply the cleaner's moves mv[0..n) of inode ino's data as
 * BR_REC_RELOCS records (format.h) the way every change is logged: under
 * the inode's lock, reserve, apply under map_lock (write), commit.  The
 * copies must be durable already.  A move whose segment has been handed
 * out since (its gen), or none of whose bytes are still durable at their
 * old address, gets no entry; a record with no entry is not logged.  On
 * a logged record, *pos gets its position and *moved grows by the bytes
 * switched.  Call with no lock held.  0 (also when the inode is gone),
 * or -errno from the store, or -ENOMEM.
 */
int fs_log_relocs(struct br_fs *fs, uint64_t ino, const struct fs_move *mv,
		  size_t n, uint64_t *pos, uint64_t *moved);

/* Where a record lives, for apply: durable records carry their log address
 * (replay), live ones their position; data records a location. */
struct fs_apply {
	uint64_t pos;			/* log position (0 during replay) */
	struct br_loc data;		/* BR_REC_DATA: location of byte 0 */
	bool dry;			/* check only, change nothing */
};

/*
 * Check one record against the map and (unless ax->dry) apply it.  The
 * caller holds map_lock for writing (or is replaying).  Returns 0,
 * BR_ERR_CORRUPT for a record that is malformed or contradicts the map
 * (replay stops there), or -ENOMEM.  A record about an inode that no longer
 * exists is accepted and ignored (see format.h).
 */
int fs_apply(struct br_fs *fs, const struct br_rec_header *h, uint32_t len,
	     const struct fs_apply *ax);

/* Free the inode if it has no name, lookup or pin (map_lock write held). */
void fs_inode_maybe_free(struct br_fs *fs, struct br_inode *in);

/* Timestamps: on-disk <-> memory. */
static inline struct timespec fs_time_get(const struct br_disk_time *t)
{
	struct timespec ts = {
		.tv_sec = (time_t)(int64_t)br_le64_get(t->sec),
		.tv_nsec = br_le32_get(t->nsec),
	};
	return ts;
}

static inline struct br_disk_time fs_time_put(struct timespec ts)
{
	struct br_disk_time t = {
		.sec = br_le64_put((uint64_t)(int64_t)ts.tv_sec),
		.nsec = br_le32_put((uint32_t)ts.tv_nsec),
	};
	return t;
}

void fs_attr_put(const struct br_inode *in, struct br_disk_attr *a);

/* ---- replay (core/replay.c) ---- */

struct br_replay {
	int fd;				/* O_DIRECT is fine */
	uint64_t fsid;
	uint64_t log_start, log_end;
	uint64_t seg_size;		/* 0: the whole log is one segment */
	uint64_t addr;			/* in: first buffer; out: end of log */
	uint64_t seg_end;		/* out: end of the segment of the last
					 * valid buffer (0: none was found) */
	uint64_t next_seg;		/* out: that buffer's next_seg */
	uint64_t seq;			/* in: its seq; out: next seq */
	uint32_t nonce;			/* in: its prev_nonce (0 after mkfs);
					 * out: nonce of the last valid buffer */
	uint64_t buffers;		/* out: buffers accepted */
	uint64_t records;		/* out: records passed to fn */
	/* Called for every record of every valid buffer, in log order, with
	 * the log address of the record header.  Nonzero stops the scan and
	 * is returned. */
	int (*fn)(void *ctx, const struct br_rec_header *h, uint32_t len,
		  uint64_t addr);
	void *ctx;
};

/*
 * Scan the log from r->addr, expecting seq r->seq there and +1 for each
 * next buffer, placed by the segment rule of format.h.  Stops, returning 0, at the first buffer that
 * is missing or invalid (magic, fsid, seq, nonce chain, span, CRC,
 * record framing):
 * nothing after a hole was ever promised.  r->addr / r->seq / r->seg_end /
 * r->next_seg then say where the next buffer goes (br_store_config's
 * next_addr, next_seq, seg_end, next_seg).  Returns fn's nonzero value, or -errno for I/O
 * errors and -ENOMEM.
 */
int br_replay_scan(struct br_replay *r);

#endif /* BR_FSYS_INT_H */
