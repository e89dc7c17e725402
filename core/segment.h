/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Segments: exact usage, the free-segment allocator and discard.
 *
 * Usage.  For every segment, `live` = bytes of durable file data (extents
 * of kind BR_EXT_DURABLE) whose log address lies in it.  It is kept exact
 * by the extent map itself (core/map.c calls br_seg_add/br_seg_sub where a
 * durable extent appears, is trimmed, split, replaced or freed, and where
 * br_extmap_complete switches a pending extent to durable), so every path
 * that changes data - writes, overwrites, truncate, punch, unlink, replay,
 * checkpoint load - is covered once.  Pending extents are not counted: they
 * are counted in the segment their buffer lands in when it completes.
 *
 * Age.  `newest` = the highest buffer seq the store has placed in the
 * segment (br_seg_placed, called at placement, before the write is even
 * submitted, and by roll-forward at mount).  The cleaner uses it as the
 * segment's age; the allocator uses it to tell whether the segment holds
 * a record the newest durable checkpoint does not cover.
 *
 * Reuse.  A segment s may be handed out again (is "free") only if
 *   - it is neither the log's current segment, the next_seg already chosen
 *     (written in the headers of the current one) nor the cleaner's head,
 *   - live[s] == 0: nothing in the map points into it,
 *   - newest[s] < ckpt_seq, the roll_seq of the newest durable checkpoint:
 *     every record in it is covered by that checkpoint and is not read by
 *     roll-forward (the cut buffer, the blob and everything after it have
 *     seq >= roll_seq), and every buffer placed in it has completed (the
 *     checkpoint synced its cut, which follows them in the log),
 *   - dead_pos[s] <= the store's durable position: dead_pos[s] is the
 *     highest log position of a record whose application took durable
 *     bytes out of s (an overwrite, punch, truncate, RELOC, or the record
 *     that deleted an inode), set by br_seg_sub from apply_pos, which
 *     fs_apply sets under map_lock (write) before it changes the map.
 * Why that is enough: a crash now loads the newest durable checkpoint,
 * which may still point into s (data that died after its cut), and rolls
 * forward every durable record in log order.  Every record that removed a
 * reference to s is durable, and replay applies the same records to the
 * same map with the same code (RELOC included: it depends on the map
 * alone), so the rebuilt map points into s exactly where the live one
 * does: nowhere.  Nothing reads file data during load or replay, so the
 * checkpoint's stale extents into s are never followed before the records
 * after them drop them.  So data that dies becomes reusable space once
 * the record that killed it is durable, without a checkpoint: the
 * cleaner's RELOC records free their victims as soon as they are synced.
 * A segment that only waits for durability is counted free as soon as
 * the durable position passes dead_pos (br_seg_nfree re-counts lazily,
 * see wait_min).  Replay sets no dead_pos (apply_pos 0): every replayed
 * record is durable.  The older slot's checkpoint is not protected: mount
 * falls back to it only if the newest one is damaged, and then segments
 * it needs may have been reused (the fallback then fails its CRCs or
 * extents; fsck reports it).
 *
 * Discard.  Segments that became free are given back to the device
 * (FALLOC_FL_PUNCH_HOLE on an image file, BLKDISCARD on a block device) by
 * br_seg_discard, outside every lock; a segment being discarded is not
 * handed out until its discard has finished.
 *
 * Readers.  A read of durable data looks its extents up under map_lock and
 * preads them after dropping it; meanwhile the data may die, a checkpoint
 * may free its segment and the store may write the segment again, and the
 * pread would return someone else's bytes.  So reads hold `readers` shared
 * from before the lookup until their pread is done (br_seg_read_begin/end),
 * and handing a segment out again (br_seg_alloc) or discarding free ones
 * first takes it exclusively for an instant: a barrier that waits for every
 * read that could have seen the old extents.  A read that starts after the
 * barrier cannot see an extent in a free segment (live == 0).  Lock order:
 * readers before map_lock; the barrier is taken with no map_lock held
 * (placement runs inside br_store_reserve, never under map_lock).
 * Writer-preferring, so a stream of reads cannot starve placement.
 *
 * Reuse generation.  gen[s] counts the times br_seg_alloc chose s as the
 * log's next segment; it is bumped (under `lock`) before the store can
 * place any buffer in s, so before any new data in s can be durable in the
 * map (that takes on_complete's map_lock write, which follows placement).
 * The cleaner takes a victim's gen with its candidate row, when s is
 * neither current nor next and holds live data, reads the segment, and
 * checks gen again under map_lock before trusting any record it read: an
 * extent durable in s that the check can see was made durable before the
 * map_lock section, so if s had been handed out again since the candidate
 * row, the check sees the bump.  A match means no durable extent in s is
 * from a later use than the one the cleaner read.  (Not covered: a buffer
 * of that same use still in flight when the cleaner read s, completing
 * before the check; the cleaner's walk stops at bytes that are not the
 * next valid buffer, so this needs out-of-order completion at s's very
 * first buffer.)
 *
 * Cleaner head.  The cleaner writes the data it moves into a segment of
 * its own, `chead` (br_seg_take_head), outside the log's chain of buffers
 * (cleaner.h, "Second head"), so cold data that survived a cleaning is
 * not mixed with fresh user writes.  chead is neither free nor a
 * candidate while the cleaner fills it, like cur and next.  Its newest[]
 * is not a placement seq but the age of the data moved in (the newest
 * victim's, br_seg_age): moved data keeps its age instead of looking
 * brand new.  That is safe for the freeness rule: the head holds no
 * record roll-forward reads, so only live and dead_pos guard it.
 *
 * Locking: `lock` is a leaf (taken under map_lock and from the store's
 * placement path, never held across I/O).  live[] and dead_pos[] change
 * under map_lock (write) or while the fs is single-threaded (mount); they
 * are atomic so the allocator and statfs can read them without map_lock
 * (dead_pos is stored before live drops, release/acquire: an allocator
 * that sees live 0 sees the position that killed the last byte).
 * newest[] is written
 * by one thread at a time (the store's seal owners are serialised by the
 * ring; mount is single-threaded).
 */
#ifndef BR_SEGMENT_H
#define BR_SEGMENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct br_store;

/* Segments held back from user data so that the records that give space
 * back (unlink, truncate, checkpoints) and the cleaner always find room:
 * user writes, and records that add to the filesystem (create, link,
 * setxattr, chmod: core/fsys.c, meta_room), get -ENOSPC once no more than
 * this many segments are free. */
#define BR_SEG_RESERVE 2u

/* With the cleaner on, users also leave this many segments free: the
 * room a pass moves live data into, so that a full filesystem can always
 * turn partly dead segments back into free ones (core/fsys.c). */
#define BR_SEG_CLEAN_ROOM 1u

struct br_seg {
	_Atomic uint64_t live;	/* durable data bytes in the segment */
	_Atomic uint64_t newest; /* newest buffer seq placed in it, 0: none */
	_Atomic uint64_t gen;	/* times handed out by br_seg_alloc (see
				 * "Reuse generation") */
	_Atomic uint64_t dead_pos; /* highest position of a record that
				 * removed durable bytes from it (map_lock
				 * write; see "Reuse") */
	_Atomic uint64_t wrote;	/* a cleaner's head: the log's newest seq
				 * when moved data last went in (newest is
				 * the data's age); 0 for the log's segments
				 * and after a mount (newest is when they
				 * were written).  The clock of the victim
				 * score's decay rate (cleaner.c, pick) */
	bool busy;		/* being discarded: not free (lock) */
	bool discarded;		/* given back since it was last used (lock) */
};

struct br_segtab {
	pthread_mutex_t lock;	/* leaf; protects what says (lock) */
	pthread_rwlock_t readers; /* see "Readers" above */
	uint64_t seg_size;	/* bytes per segment */
	uint64_t nseg;		/* segments, 0 included (0 holds no log) */
	struct br_seg *v;	/* nseg entries */
	uint64_t cur;		/* segment the log is in (lock) */
	uint64_t next;		/* next_seg chosen for it, 0: none (lock) */
	uint64_t chead;		/* the cleaner's open segment, 0: none
				 * (lock; see "Cleaner head") */
	uint64_t ckpt_seq;	/* roll_seq of the newest durable checkpoint
				 * (lock); 1 after mkfs */
	uint64_t apply_pos;	/* position of the record being applied
				 * (map_lock write; fs_apply sets it, 0 in
				 * replay): dead_pos of what it removes */
	struct br_store *store;	/* its durable position ends the wait of
				 * dead_pos; NULL: everything is durable */
	_Atomic uint64_t wait_min; /* lowest dead_pos of a segment that
				 * only waits for durability, UINT64_MAX:
				 * none (a hint: br_seg_nfree re-counts once
				 * the durable position reaches it) */
	int fd;			/* for discards; -1: none */
	bool discard;		/* give freed segments back to the device */
	bool blkdev;		/* fd is a block device: BLKDISCARD */
	_Atomic uint64_t nfree;	/* free segments, recounted whenever
				 * freeness can change (allocation, a
				 * durable checkpoint, set_log, the durable
				 * position passing wait_min); data only
				 * dies, never revives, between those */
	_Atomic uint64_t extents;	/* extents of every map accounted
					 * here (core/map.c), for the
					 * checkpoint size guess */
	_Atomic uint64_t discards;	/* segments discarded */
	_Atomic uint64_t allocs;	/* segments handed out */
	_Atomic uint64_t reused;	/* of which held data before */
};

/* Whole-table figures (br_seg_space). */
struct br_seg_space {
	uint64_t log_segs;	/* segments of the log (nseg - 1) */
	uint64_t free_segs;	/* free now (see above) */
	uint64_t dead_segs;	/* no live data, not free yet: waiting for a
				 * checkpoint or for the record that killed
				 * its data to be durable (not current /
				 * next) */
	uint64_t ckpt_segs;	/* of which wait for a checkpoint (newest at
				 * or above its roll point): no sync frees
				 * them */
	uint64_t live_bytes;	/* sum of live[] */
	uint64_t open_segs;	/* current + chosen next + cleaner head */
};

/* 0 or -ENOMEM.  fd (may be -1) is used for discards only. */
int br_seg_init(struct br_segtab *t, uint64_t nseg, uint64_t seg_size,
		int fd, bool discard);
void br_seg_destroy(struct br_segtab *t);

/* Bracket a read of durable extents, from their lookup to the end of the
 * pread (see "Readers"); t may be NULL (nothing is ever reused). */
void br_seg_read_begin(struct br_segtab *t);
void br_seg_read_end(struct br_segtab *t);

/* Forget usage and age (mount falls back to the other slot). */
void br_seg_reset(struct br_segtab *t);

/* `len` durable bytes at log address `addr` appeared / went away (the
 * extent map calls these).  A range may cross segments. */
void br_seg_add(struct br_segtab *t, uint64_t addr, uint64_t len);
void br_seg_sub(struct br_segtab *t, uint64_t addr, uint64_t len);

/* The buffer of generation seq was placed at addr. */
void br_seg_placed(struct br_segtab *t, uint64_t addr, uint64_t seq);
/* The same as the store's `placed` callback (ctx = the table). */
void br_seg_on_placed(void *ctx, uint64_t addr, uint64_t seq);

/* Where the log is: current segment and the next_seg chosen for it (byte
 * addresses, next 0 = none). */
void br_seg_set_log(struct br_segtab *t, uint64_t cur_addr, uint64_t next_addr);

/* The store's alloc_seg callback (ctx = the table): the log enters the
 * segment at byte address seg; choose the one after it.  *next = 0 if
 * none is free (not an error). */
int br_seg_alloc(void *ctx, uint64_t seg, uint64_t *next);

/* A checkpoint whose roll point has generation roll_seq is durable (its
 * slot is written, or it was loaded at mount). */
void br_seg_ckpt_durable(struct br_segtab *t, uint64_t roll_seq);

/* roll_seq of the newest durable checkpoint: a segment whose newest is at
 * or above it is not free before the next checkpoint (see "Reuse"). */
uint64_t br_seg_ckpt_seq(struct br_segtab *t);

/* The store whose durable position dead_pos waits for (set once the
 * store is open; NULL: every position counts as durable). */
void br_seg_set_store(struct br_segtab *t, struct br_store *store);

void br_seg_space(struct br_segtab *t, struct br_seg_space *sp);

/* Free segments now (no scan). */
uint64_t br_seg_nfree(struct br_segtab *t);

/*
 * Bytes a user can still write: 0 once no more than `reserve` segments
 * are free or dead (dead ones become free at the next checkpoint), else
 * the free and dead segments beyond the reserve, the chosen next segment
 * and what is left of the current one (log_next: where the next buffer
 * goes); with `cleanable`, also the dead bytes the cleaner can reach: the
 * unused part of every segment that is not open, holds live data and is
 * at most BR_SEG_VICTIM_MAX live (the cleaner takes fuller victims only
 * when these give no pass worth running, at a cost of 7 moved bytes or
 * more per byte gained),
 * less one segment (the head a pass moves into is left partly empty, so
 * the last segment's worth of scattered dead space cannot be reached).
 * One scan under the table's lock.  Fuller segments are not counted: what
 * the cleaner would gain from them does not pay for the move, so statfs
 * under-reports by their dead bytes rather than promise space writes
 * could not get.
 */
uint64_t br_seg_user_avail(struct br_segtab *t, uint64_t log_next,
			   uint64_t reserve, bool cleanable);

/* The fullest segment the cleaner prefers to clean: 7/8 live (a pass
 * that moves a fuller one writes 7 bytes to gain one, more with its RELOC
 * records).  Fuller ones are taken only when no pass can be made of
 * these: a fill overwritten at random leaves its dead space spread
 * thinner than an eighth per segment, and refusing it gave every
 * overwrite ENOSPC at 90 % full (cleaner.c, pick). */
#define BR_SEG_VICTIM_MAX(seg_size) ((seg_size) - (seg_size) / 8)

/* A segment the cleaner may clean (br_seg_candidates). */
struct br_seg_cand {
	uint64_t seg;		/* segment number */
	uint64_t live;		/* live bytes */
	uint64_t newest;	/* newest buffer seq placed in it */
	uint64_t wrote;		/* seq when data last went in (wrote, or
				 * else newest) */
	uint64_t gen;		/* its reuse generation (br_seg_gen) */
};

/*
 * Fill out[0..max) with the segments that hold live data and are neither
 * free, being discarded, the current segment nor the chosen next one, in
 * segment order.  *now gets the newest seq placed anywhere (the cleaner's
 * clock).  Returns how many were written.
 */
size_t br_seg_candidates(struct br_segtab *t, struct br_seg_cand *out,
			 size_t max, uint64_t *now);

/* Hand the lowest free segment (after the current one, wrapping) to
 * the cleaner as its new head; the previous head, if any, becomes an
 * ordinary segment.  Its age starts at 0 (br_seg_age raises it).  0 and
 * *seg = its number, or -ENOSPC if none is free.  Takes the readers
 * barrier, as br_seg_alloc does: no map_lock held. */
int br_seg_take_head(struct br_segtab *t, uint64_t *seg);
/* The cleaner closes its head (no segment is open for it any more). */
void br_seg_drop_head(struct br_segtab *t);
/* Data as new as buffer seq `age` was moved into segment s (its newest
 * becomes at least that) when the log's newest seq was `now` (wrote). */
void br_seg_age(struct br_segtab *t, uint64_t s, uint64_t age, uint64_t now);

/* Segment s's reuse generation now (see "Reuse generation").  Callers
 * that compare it with a candidate's gen hold map_lock. */
uint64_t br_seg_gen(struct br_segtab *t, uint64_t s);

/* Copy live[] into usage[0..nseg). */
void br_seg_usage(struct br_segtab *t, uint64_t *usage);
/* Copy newest[] (the ages) into age[0..nseg), for the checkpoint blob. */
void br_seg_ages(struct br_segtab *t, uint64_t *age);

/* Whether segment s is free now (see above). */
bool br_seg_is_free(struct br_segtab *t, uint64_t s);

/* Give every free, not yet discarded segment back to the device.  Returns
 * how many were discarded, or -errno of the first failure (EOPNOTSUPP:
 * discard is then turned off). */
int br_seg_discard(struct br_segtab *t);

#endif /* BR_SEGMENT_H */
