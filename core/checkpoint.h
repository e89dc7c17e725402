/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checkpoints: the whole map serialised into the log, so mount loads it and
 * replays only the records after it (format.h, "Checkpoints").
 *
 * Taking one (br_ckpt_write): a copy-on-write snapshot of the map at a
 * cut in the log.
 *
 *   1. Block every change: ns_lock, then all FS_INODE_LOCKS inode locks in
 *      index order (the one place that holds more than one; nobody takes
 *      ns_lock or a second inode lock while holding an inode lock, so this
 *      cannot deadlock).  Every record that was reserved has now been
 *      applied to the map, and no new one can be reserved.
 *   2. Append the CUT record: its position is the cut.  Everything before
 *      it is in the map, nothing after it is.  Under map_lock write, start
 *      the snapshot (generation, the first inode number younger than the
 *      cut, a cursor at the first inode) and unlock everything: writers
 *      are blocked for steps 1-2 only, which take the same time whatever
 *      the size of the map.
 *   3. Serialise the map into a memory blob as it was at the cut, while
 *      writers go on:
 *        - the checkpointing thread walks the inodes in batches under
 *          map_lock read (a writer waits for one batch at most);
 *        - a change to an inode the walk has not reached yet first puts
 *          the inode into the blob (br_ckpt_cow, called by fs_apply and
 *          the atime update under map_lock write before they change it):
 *          its first change since the cut meets it in its state at the
 *          cut;
 *        - br_inode.ckpt_gen says an inode is in the blob already; inodes
 *          younger than the cut, and inodes without a name at it, are
 *          never put in.
 *      Extents that are still pending (their buffer has not completed) are
 *      noted with their buffer generation (at most the cut's: the state
 *      is the cut's) and patched in step 5.  Where an extent's bytes are
 *      may change after the cut without a record about the inode (a
 *      completion makes it durable); what the bytes are cannot.
 *   4. End the snapshot (map_lock write).  The longest time a writer
 *      could have waited for steps 1-4 (the cut, one batch, one
 *      copy-on-write) is measured: struct br_ckpt_stats.
 *   5. br_store_sync(cut): every buffer up to the cut is on disk.  While the
 *      checkpoint is being taken, on_complete records (generation, address,
 *      prev_nonce) of every buffer up to the cut that completes (the
 *      "watch"), which gives the addresses of the pending extents and of
 *      the cut's buffer (the roll-forward point) and its prev_nonce.
 *   6. Fill in the segment usage table, CRC the blob, append HEAD + DATA
 *      pieces, br_store_sync the last one.
 *   7. Write the slot not holding the checkpoint this mount continues from,
 *      with a generation above both slots.
 *
 * Mount (br_ckpt_mount): try the valid slots newest first; load the
 * checkpoint of the slot's generation found by scanning from its roll
 * point (BR_ERR_CORRUPT: incomplete, CRC, or does not parse -> try the
 * other slot), then roll forward from the slot's roll point, skipping the
 * records the checkpoint covers and every CKPT_* record.  Replaying the
 * same log twice gives the same map: the cut says exactly which records
 * the checkpoint already holds.
 *
 * Not for use outside core/ except br_ckpt_write, br_ckpt_stats (tests,
 * tools) and br_ckpt_usage (fsck).
 */
#ifndef BR_CHECKPOINT_H
#define BR_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct br_fs;
struct br_inode;
struct br_replay;
struct br_store_done;

#define BR_CKPT_BYTES_DEFAULT (256ull << 20)	/* bytes of log between */
#define BR_CKPT_SECS_DEFAULT 30u		/* seconds between */
/* The default size trigger also waits for this many log bytes per byte of
 * the newest blob, up to BR_CKPT_BYTES_SCALED_MAX (the roll-forward a
 * crash leaves): a checkpoint writes the whole map, and a fragmented
 * file's every 256 MiB became a share of the log that grows with the
 * file (a 10 GiB file of 4 KiB extents, ~7 bytes each: an 18 MB blob, 7 %
 * of the log; with this, 0.4 %). */
#define BR_CKPT_LOG_PER_BLOB 256u
#define BR_CKPT_BYTES_SCALED_MAX (4ull << 30)
/* The default time trigger also waits for this many log bytes per byte of
 * the newest blob: 30 s after a trickle of changes it rewrote the whole
 * map (that 18 MB blob every 30 s: 0.6 MB/s written for a few bytes a
 * second), where what a crash would replay was smaller than the blob. */
#define BR_CKPT_SECS_LOG_PER_BLOB 1u

struct br_ckpt_stats {
	uint64_t written;		/* checkpoints written by this mount */
	uint64_t last_gen;		/* generation of the newest one (loaded
					 * or written); 0: none */
	uint64_t last_blob_bytes;	/* size of the newest blob written */
	uint64_t last_inodes;		/* inodes in it */
	uint64_t last_block_ns;		/* the longest a writer could wait
					 * for the newest one: the max of */
	uint64_t last_cut_ns;		/*   steps 1-2 (all writers), */
	uint64_t last_walk_batch_ns;	/*   the longest batch of the walk, */
	uint64_t last_cow_max_ns;	/*   the longest copy-on-write */
	uint64_t last_cow_inodes;	/* inodes writers put into its blob */
	uint64_t max_block_ns;		/* the longest block this mount */
	uint64_t last_total_ns;		/* whole br_ckpt_write, incl. I/O */
	int last_err;			/* of the last background attempt */
	/* At mount: */
	uint64_t loaded_gen;		/* generation loaded (0: none) */
	uint64_t loaded_blob_bytes;	/* its blob's size */
	bool fallback;			/* the newest slot was unusable */
	uint64_t load_ns;		/* finding + parsing the blob */
	uint64_t tail_buffers;		/* buffers scanned by roll-forward */
	uint64_t tail_records;		/* non-checkpoint records applied */
	uint64_t usage_mismatch;	/* segments whose stored usage differs
					 * from the blob's extents (fsck) */
};

/* Allocate the checkpoint state of fs (at open).  0 or -ENOMEM. */
int br_ckpt_init(struct br_fs *fs);
/* Stop the background thread (if any) and free the state. */
void br_ckpt_free(struct br_fs *fs);

/*
 * Choose a slot, load its checkpoint into fs->map (which must be empty)
 * and roll forward.  On success *rp says where the log continues (its
 * addr / seq / seg_end / next_seg / nonce, as after br_replay_scan).
 * BR_ERR_CORRUPT: no slot is valid, no checkpoint loads, or a record
 * after the cut contradicts the ones before; -errno for I/O and memory.
 * `why` (may be NULL) gets a one-line reason.
 */
int br_ckpt_mount(struct br_fs *fs, struct br_replay *rp, char *why,
		  size_t why_len);

/*
 * Take a checkpoint now (see above) and publish it in a slot.  Blocks
 * other checkpoints, not readers or writers (beyond steps 1-2, a batch of
 * step 3 or one copy-on-write).  0, the
 * store's latched error, -EROFS (opened read-only), -ENOMEM, -ENOSPC
 * (the blob does not fit in the log's segment and the free segments
 * beyond BR_CLEAN_META_SEGS: none of it was written, the log holds
 * everything as before), or -errno from the slot write.
 */
int br_ckpt_write(struct br_fs *fs);

/* Start the background thread: a checkpoint after `bytes` bytes of log
 * (0: br_ckpt_every_bytes's default, UINT64_MAX: never by size) or `secs`
 * seconds after the first change since the last one (0:
 * br_ckpt_secs_default once the log since the last one is as big as the
 * newest blob, UINT32_MAX: never by time).  0 or -errno from
 * pthread_create. */
int br_ckpt_start(struct br_fs *fs, uint64_t bytes, uint32_t secs);
void br_ckpt_stop(struct br_fs *fs);

/* Log bytes between checkpoints by size: `bytes` as given to
 * br_ckpt_start, or for 0 the default, br_ckpt_bytes_default or
 * BR_CKPT_LOG_PER_BLOB times `blob` (the newest blob's size) if that is
 * more, at most BR_CKPT_BYTES_SCALED_MAX. */
uint64_t br_ckpt_every_bytes(uint64_t bytes, uint64_t blob);

/* Tests only: the default size trigger's floor (BR_CKPT_BYTES_DEFAULT),
 * lowered to see it scale without writing 256 MiB.  Read by the
 * background thread without a lock: set it before the mount. */
extern uint64_t br_ckpt_bytes_default;
/* Tests only: the default time trigger (BR_CKPT_SECS_DEFAULT), the same
 * way. */
extern uint32_t br_ckpt_secs_default;

/* Whether a checkpoint at unmount would record anything new. */
bool br_ckpt_needed(struct br_fs *fs);

/* Inode `in` is about to change (map_lock write held): while a snapshot is
 * being taken, put it in first if it is not there yet (step 3). */
void br_ckpt_cow(struct br_fs *fs, struct br_inode *in);

/* Inode `in` is about to be freed (map_lock write held): the walk's cursor
 * steps past it. */
void br_ckpt_inode_gone(struct br_fs *fs, struct br_inode *in);

/* Tests: call fn(ctx, 0) once the snapshot has started (step 2 done, no
 * lock held) and fn(ctx, k) after the walk's k-th batch; fn may change
 * the filesystem.  NULL: none. */
void br_ckpt_snap_hook(struct br_fs *fs, void (*fn)(void *ctx, int at),
		       void *ctx);

/* Tests only: the blob version br_ckpt_write writes.  1 or 2 writes that
 * older version (unpacked extents; 1 without the age table) and leaves
 * INCOMPAT_CKPT_PACKED unset, as an older bringfs did, so its images are
 * still tested to load; anything else, BR_CKPT_VERSION (the default).
 * Read when a checkpoint starts, without a lock: set it while none runs. */
extern unsigned br_ckpt_write_version;

/* Completion hook: called by on_complete with map_lock held for writing. */
void br_ckpt_on_complete(struct br_fs *fs, const struct br_store_done *d);

void br_ckpt_stats(struct br_fs *fs, struct br_ckpt_stats *st);

/* Log bytes the next checkpoint will take, give or take: the newest blob
 * written or loaded, the inodes, extents, names, xattrs and symlink
 * targets the map gained since counted in blob bytes, a sixteenth more
 * and 64 KiB (before any blob: the map counted whole, a quarter more, the
 * usage and age tables, 64 KiB).  A guess: br_ckpt_write refuses
 * (-ENOSPC, nothing of the blob written) a blob that does not fit in the
 * log's segment and the free segments beyond BR_CLEAN_META_SEGS.
 * Lock-free (writers call it). */
uint64_t br_ckpt_guess(struct br_fs *fs);

/* Tests: bytes taken off br_ckpt_guess, so that a blob outgrows the room
 * kept for it (tests/test_cleaner.c, the refused checkpoint).  0 (the
 * default) otherwise; set while the filesystem is idle. */
extern uint64_t br_ckpt_guess_short;

/* Segments that guess fills, rounded up. */
uint64_t br_ckpt_segs(struct br_fs *fs);

/* Whether a checkpoint that frees `segs` segments (empty ones waiting for
 * it) gives back more than it takes: its blob lands in segments that in
 * turn wait for the next checkpoint, so one taken for less loops, each
 * eating into the reserve (seen: 29 checkpoints in 3 s on an idle full
 * filesystem, free segments down to 1). */
bool br_ckpt_pays(struct br_fs *fs, uint64_t segs);

/*
 * Segment usage recomputed from the map: usage[i] = bytes of durable file
 * data in segment i, for i < nseg (pending extents are not counted).
 * Caller holds map_lock or has the fs to itself.
 */
void br_ckpt_usage(struct br_fs *fs, uint64_t *usage, uint64_t nseg);

/* The usage table of the checkpoint loaded at mount (NULL: none). */
const uint64_t *br_ckpt_loaded_usage(struct br_fs *fs, uint64_t *nseg);

#endif /* BR_CHECKPOINT_H */
