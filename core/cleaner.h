/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The cleaner: reclaims segments that are only partly dead.
 *
 * A pass (one at a time, `run_lock`):
 *   1. Victims by cost-benefit (Sprite LFS), with the segment's own
 *      stability for the age: score = (1-u)/(1+u) * (t / -ln u)^0.35
 *      (BR_CLEAN_RATE_EXP), u = live bytes / segment size (exact,
 *      core/segment.h), t = the newest seq placed anywhere minus the
 *      seq when data last went into the segment (segment.h, wrote;
 *      newest for the log's segments, saved in checkpoints).  -ln u / t
 *      is the rate its live part has been dying at: a segment whose
 *      data dies slowly (cold) is worth cleaning fuller than one whose
 *      data is still dying (hot), which will be cheaper later.  The
 *      data's age, Sprite's term (and bringfs's square root of it
 *      before), made the cleaner's fresh copies of old data look cold
 *      and got them copied again: in tests/bench/lfs_model.c (510
 *      segments, 90 % full) the rate gives WA 5.32 uniform / 3.13
 *      hot-cold, the square root of the age 5.52 / 3.22 and Sprite's
 *      5.98 / 3.24, and it is no worse at 50 and 70 % (1.23 / 1.17 and
 *      1.83 / 1.32, against 1.24 / 1.14 and 1.86 / 1.33).  The
 *      current segment, the chosen next one and the head are never
 *      candidates; nor is a segment with no live data (it only waits for
 *      durability or a checkpoint), nor one holding a buffer at or after
 *      the newest durable checkpoint's roll point (roll-forward reads it,
 *      so it would not be free after the pass; when nothing else is worth
 *      cleaning the pass takes a checkpoint first).  Victims are taken
 *      best score first (br_clean_rank orders the best 64, the rest
 *      only if the pass gets past them), from those at most 7/8 live
 *      (BR_SEG_VICTIM_MAX) or, when they give no pass worth running,
 *      from all, while what they hold fits in the free segments
 *      (BR_CLEAN_META_SEGS are left for other metadata, bytes granted to
 *      writes in progress for them, and room for a checkpoint and a
 *      segment after it while candidates wait for one) and until they
 *      gain what was asked (the background thread: what free lacks of
 *      its high mark); a pass that would not gain an eighth of a segment
 *      more than it writes is not run, except at the writers' edge (free
 *      segments down to the user reserve + BR_CLEAN_SYNC_SEGS), where
 *      any gain of a few blocks is taken rather than ENOSPC, and a
 *      checkpoint is taken for blocked candidates as soon as their dead
 *      space exceeds its size (elsewhere: twice its size and a segment).
 *      A pass that finds no victim takes a checkpoint only when the
 *      empty segments waiting for one outnumber its blob's
 *      (br_ckpt_pays: else each such checkpoint's own blob waited for
 *      the next, in a loop).
 *   2. Each victim is read whole (O_DIRECT), its buffers walked from the
 *      segment start while the headers hold (magic, fsid, span, CRC, seq
 *      increasing), and every data piece's bytes (a data record's in
 *      the log's buffers, a BR_REC_DATA_VEC entry's in the cleaner's)
 *      that the extent map still maps AT THAT LOG ADDRESS (durable, same address; checked
 *      under map_lock with the victim's reuse generation, segment.h) are
 *      copied into the second head (below).  Metadata records need no
 *      moving (the checkpoint covers them).
 *   3. The copies are written and fdatasync'ed, then the copied pieces
 *      of each inode, in copy order, are logged as BR_REC_RELOCS records
 *      (format.h: ~10 bytes a piece, where a BR_REC_RELOC record per piece
 *      took 48, 0.09 of every user byte at 90 % full) and applied like
 *      any change (fs_log_relocs: the inode's lock, reserve, apply under
 *      map_lock, commit): each byte still durable at its old address, in
 *      a victim not handed out since its candidate row, points at its
 *      copy; a user write that landed in between wins; a piece that died
 *      whole costs no entry.  The first record of a filesystem sets
 *      BR_FEATURE_INCOMPAT_RELOC and _RELOCS in the superblocks first.
 *   4. br_store_sync of the last record, and no checkpoint: the victims (no
 *      live data left, every record that emptied them durable) are then
 *      free by the allocator's rules (segment.h, "Reuse").  A crash before
 *      that loses nothing (the victims are not free: what the durable
 *      checkpoint and log point at is intact); a crash after it loads the
 *      checkpoint, which may point into reused victims, and replays the
 *      RELOC records, which point the map at the copies.
 *
 * Second head.  Moved data is not written through the ring with user
 * data: it goes to a segment of the cleaner's own (br_seg_take_head), as
 * off-chain buffers (format.h, BR_SEQ_OFF_CHAIN) written with pwrite,
 * packed in BR_REC_DATA_VEC records: one 24-byte header per inode and
 * buffer and a few bytes a piece, where a data record per 4 KiB piece
 * held 0.6 % of the device in headers at 90 % full.
 * Data that survived a cleaning is cold and stays together instead of
 * being mixed into segments that user overwrites empty quickly, and the
 * head's age is that of the data moved in (br_seg_age), not "now", so
 * cost-benefit does not take it for fresh data.  Roll-forward never reads
 * these buffers (RELOC records point into them; they are synced before
 * the first one is logged).  Only the open head is protected from the
 * allocator, so the copies in a head are relocated before the cleaner
 * leaves it for a new one.
 *
 * While a pass runs it holds (`held`) the segments it planned to fill and
 * has not taken yet; user writes treat what it holds beyond the user
 * reserve as taken (space check in core/fsys.c), so users cannot eat the
 * room the cleaner needs to finish.
 *
 * Triggers: a background thread (br_cleaner_start) cleans while fewer than
 * `low` segments are free (by default BR_CLEAN_LOW_ABOVE above the user
 * reserve), until low + low/4 + 1 are, each pass sized to
 * get there and, above the writers' edge, to leave writers a segment
 * beyond what it holds, without sleeping between passes below low.
 * With the cleaner on, users leave the user reserve free
 * (fs_user_reserve: BR_SEG_RESERVE, room for the next checkpoint beyond
 * one segment, and BR_SEG_CLEAN_ROOM; core/fsys.c space_check).  A user
 * write is granted bytes of the room above the reserve (a short write
 * only when syncing, a checkpoint and cleaning leave less than it asks)
 * and runs passes itself
 * (br_cleaner_run, holding no lock) once the
 * free segments are down to the user reserve + BR_CLEAN_SYNC_SEGS (the
 * thread is not keeping up), while no more than the reserve +
 * BR_CLEAN_SYNC_SEGS - 1 are free.  A write that finds what is above the reserve held by
 * a running pass waits for that pass.  At the user reserve a write syncs
 * if segments wait only for durability, takes a checkpoint if segments
 * wait for one, then cleans down to the reserve before it returns ENOSPC.
 * A pass itself may take a checkpoint from the reserve when the victims
 * it unblocks give back more than twice its size (at the writers' edge:
 * more than its size), and a segment to move into is left after it.
 *
 * Measured (tests/bench/wa-bench.sh: 1 GiB, 510 segments of 2 MiB, 4 KiB
 * random overwrites drawn independently, three times the log; Sprite's
 * cost-benefit simulated on the same geometry in brackets): WA uniform /
 * hot-cold 1.26 / 1.18 at 50 % (1.25 / 1.21), 1.94 / 1.37 at 70 %
 * (1.93 / 1.40), 6.42 / 3.53 at 90 % (5.98 / 3.24); under cleaning at
 * 90 % uniform 0.52-0.63 of the IOPS of an empty filesystem.  WA = (log
 * bytes per user byte) / (1 - victim utilisation): what the log writes
 * besides user data is multiplied by ~7 at 90 %, so moves are logged
 * packed (BR_REC_RELOCS, ~10 bytes a piece; 48-byte RELOC records cost
 * 0.6 of WA there), and so are the copies (BR_REC_DATA_VEC: a data
 * record per piece held ~3 segments in headers, 6.65 / 3.53 at 90 %).
 * The rest of the gap at 90 % is the space held out of the cleaner's
 * reach, which the model does not have (wa-bench's samples at 90 %
 * uniform: 6.4 segments free, of them 3.0 the user reserve; 3 open,
 * where the model has 2 heads and 2-3 free; 0.4 dead waiting for
 * durability), the checkpoint in the log, and the user records'
 * headers.  In the model each held segment costs ~2 % of WA at 90 %.
 * The room for the next checkpoint was the map counted whole, a quarter
 * more (two segments for a one-segment blob); as the last blob and what
 * the map gained since it took 6.39 / 3.45 to 6.25 / 3.44, with the
 * thread's threshold following the reserve down.  Keeping writers out
 * of the thread's passes (BR_CLEAN_LOW_ABOVE 4, BR_CLEAN_SYNC_SEGS 1,
 * pick's bg) then cost ~1.5 segments free and 2.5 % of WA at 90 % for
 * 0.48-0.50 -> 0.52-0.63 of the empty filesystem's IOPS.  Extents are
 * packed in the checkpoint,
 * ~8 bytes each: at 24 a file fragmented by 4 KiB overwrites made a
 * 5.7 MB blob, held twice (in the log and as room in the reserve), and
 * 90 % was 8.53 / 3.81.  What the session before last's 6.35 at 90 %
 * lacked: it overwrote a random permutation (fio's default random map),
 * which empties whole segments late in every pass by itself.  Fixed on
 * the way: writers that found a pass holding the space above the reserve
 * took a checkpoint each (465 in one run, 40 % of the log's bytes),
 * buffers sealed early by a pass's sync left the rest of their segment
 * unused (buffers are now capped to the segment's room), and passes of
 * nseg/4 victims overshot the high mark (~24 of 254 segments free at
 * 50 %).
 *
 * STATUS: runs when br_fs_options.cleaner is set; the daemon sets it
 * unless mounted with -o cleaner=off.  Tested by tests/test_cleaner.c,
 * tests/mount/test_enospc.sh and tests/crash/test_kill_clean.sh (SIGKILL
 * during heavy cleaning).
 *
 * Lock order: run_lock -> (ns_lock -> ilock -> map_lock, as in struct
 * br_fs).  Nobody takes run_lock while holding any filesystem lock.
 */
#ifndef BR_CLEANER_H
#define BR_CLEANER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct br_fs;

/* The exponent of the victim score's stability term (step 1 above).  In
 * tests/bench/lfs_model.c 0.5 made hot/cold at 50 and 70 % worse than
 * Sprite's score (1.22, 1.42), 0.25 hot/cold at 90 % (3.37). */
#define BR_CLEAN_RATE_EXP 0.35

/* Default threshold: BR_CLEAN_LOW_ABOVE segments above the user reserve
 * (fs_user_reserve, which follows the checkpoint's size), at most this
 * share of the log unless that is not above the reserve (and at least
 * BR_SEG_RESERVE + 2); the thread cleans
 * until low + low/4 + 1 are free.  Every segment kept free is slack the
 * used segments do not hold as dead space, so victims are fuller: at
 * 90 % full (254 segments of 1 MiB, 4 KiB random overwrites) low 8 gave
 * WA 11.0 (uniform) / 5.5 (hot/cold), low 6 9.2 / 4.4.  But the thread
 * must start clear of the writers' edge (BR_CLEAN_SYNC_SEGS) with room
 * for passes that leave writers a segment (cleaner.c, pick): wa-bench at
 * 90 % uniform, 2 above a reserve of 3 (writers' edge at 2): WA 6.25,
 * 8.4-9.6k IOPS under cleaning, half the writers' time in 25 ms waits
 * for passes; 3 (edge at 1): 6.29, 9.3k; 4: 6.45, 11.6k (0.61 of the
 * empty filesystem, p99.9 latency 25 -> 10 ms). */
#define BR_CLEAN_LOW_PCT 15u
#define BR_CLEAN_LOW_ABOVE 4u

/* Writers clean themselves (br_cleaner_run) once no more than this many
 * segments beyond the user reserve are free: the background thread is not
 * keeping up.  Small on purpose: every segment kept empty is space the
 * used segments cannot hold dead data in, which raises the utilisation of
 * every victim (4 here made victims 92 % live at 70 % fill on a 31-segment
 * log, WA 30; 2 gives 78 %), and a writer that reaches it waits for the
 * thread's pass (at 2, with the thread starting at 2 too, writers ran a
 * quarter of the passes and waited 13 s of 40).  A pass still needs room
 * for what it moves and its RELOC records before its victims are free. */
#define BR_CLEAN_SYNC_SEGS 1u

/* Free segments a pass leaves for other metadata records (unlink,
 * truncate) beyond the log's current and next segment: a pass's own
 * RELOC records are in its budget, and these records are small.  The
 * user reserve (fs_user_reserve: BR_SEG_RESERVE, a checkpoint less one
 * segment, BR_SEG_CLEAN_ROOM) then leaves a pass one segment to move
 * into even after it took a checkpoint. */
#define BR_CLEAN_META_SEGS 1u

struct br_cleaner_stats {
	uint64_t runs;		/* passes that cleaned at least one segment */
	uint64_t sync_runs;	/* of which run by a writer (br_cleaner_run) */
	uint64_t cleaned_segments; /* victims cleaned */
	uint64_t moved_bytes;	/* live bytes rewritten */
	uint64_t copied_bytes;	/* bytes written to the second head
				 * (buffer spans; device bytes the store's
				 * own count does not see) */
	uint64_t ckpt_bytes;	/* blob bytes of the checkpoints the
				 * cleaner took (victims newer than the roll
				 * point, dead segments waiting for one) */
	uint64_t heads;		/* segments opened as the second head */
	uint64_t recleaned;	/* victims picked again while in the same
				 * use (an earlier pass did not empty them) */
	uint64_t no_progress;	/* passes that found nothing worth doing */
	uint64_t reused_victims;	/* victims handed out again while their
				 * pass walked them (rest skipped) */
	uint64_t unreadable;	/* victims left as they were because reading
				 * them failed (not picked again in the
				 * same use) */
	uint64_t low;		/* the thread's threshold now, segments
				 * (0: no thread) */
};

/* Allocate the cleaner state (at open, before the store starts).  0 or
 * -ENOMEM. */
int br_cleaner_init(struct br_fs *fs);
/* Stop the thread (if any) and free the state. */
void br_cleaner_free(struct br_fs *fs);

/* Start the background thread.  low_pct: threshold as a percentage of the
 * log's segments, 1..90 (0: the default above).  0, -EINVAL, or -errno
 * from pthread_create. */
int br_cleaner_start(struct br_fs *fs, unsigned low_pct);
/* Stop the thread after its current pass; passes by br_cleaner_run still
 * work afterwards. */
void br_cleaner_stop(struct br_fs *fs);

/*
 * Make more than BR_SEG_RESERVE + `nsegs` segments free if cleaning can:
 * waits for a pass already running, then runs passes (each ends with a
 * sync of its RELOC records) until that many are free, one makes no
 * progress, or 8 have run (a writer calling this is not held up longer).
 * Call with no filesystem lock held.  Returns 0 when enough segments are
 * free, and also after 8 passes that each cleaned something while more
 * than BR_SEG_RESERVE are free (callers re-check the count); -ENOSPC when
 * a pass finds nothing worth cleaning (no victim at most
 * BR_SEG_VICTIM_MAX live, or too little room to gain) before enough are
 * free; or -errno (store error, -ENOMEM, read errors).  A target beyond
 * what the live data leaves of the log is never reached.
 */
int br_cleaner_run(struct br_fs *fs, unsigned nsegs);

/* Segments a running pass keeps for itself (0: none). */
uint64_t br_cleaner_held(struct br_fs *fs);

/* Wait for the pass running now, if any, to end.  No filesystem lock
 * held. */
void br_cleaner_wait(struct br_fs *fs);

/* Wake the thread (a writer saw free space fall below the threshold). */
void br_cleaner_kick(struct br_fs *fs);

/* Whether free segments are below the threshold (cheap). */
int br_cleaner_wanted(struct br_fs *fs);

void br_cleaner_stats(struct br_fs *fs, struct br_cleaner_stats *st);

/*
 * The background thread's steps (with `low` and `high` its thresholds,
 * BR_SEG_RESERVE + 2 <= low < high; also for tests/test_cleaner.c).
 * br_clean_lack: at `nfree` free segments, how many the next pass should
 * gain; 0 when the thread sleeps (at `high` or more, or at `low` or more
 * while it was not cleaning: it starts below low and goes on up to high).
 * At most high - BR_SEG_RESERVE, more the fewer are free.
 * br_clean_pause: after a pass that asked for `lack` and cleaned, the
 * milliseconds to sleep before the next (0: none): never below low, and
 * above it shorter the more it lacked, so that the thread works harder
 * as space runs out.
 */
uint64_t br_clean_lack(uint64_t nfree, uint64_t low, uint64_t high,
		       bool active);
unsigned br_clean_pause(uint64_t nfree, uint64_t low, uint64_t high,
			uint64_t lack);

/* Victim ranking, the pieces of step 1 a pass runs (also for
 * tests/test_cleaner.c and tests/bench/bench_pick.c). */
struct br_clean_scored {
	double score;
	uint64_t seg, live, newest;
	uint64_t gen;		/* its reuse generation when picked */
};

/* The score of a segment `live` bytes of `seg` full (0 < live <= seg),
 * last written at seq `wrote`, the clock being `now` (step 1 above). */
double br_clean_score(uint64_t live, uint64_t seg, uint64_t now,
		      uint64_t wrote);

/* Put the k best of v[0..n) (highest score first, ties by lower seg) at
 * v[0..k) in that order; the rest after them in no order.  Returns
 * min(k, n).  Linear on average for small k: a pass takes a few victims
 * out of every segment of the log. */
size_t br_clean_rank(struct br_clean_scored *v, size_t n, size_t k);

/* Test hook (tests/test_cleaner.c: a crash copy in the middle of a pass):
 * called by a pass after each victim it moved, before its RELOC records,
 * with no filesystem lock held.  NULL: none. */
extern void (*br_cleaner_moved_hook)(struct br_fs *fs, size_t moved_victims);
/* Test hook (fault injection): the result (0 or -errno) of each of the
 * cleaner's own device I/Os, reads of victims (write false, the
 * segment's bytes), writes of its copies and their flush (off, len 0),
 * as the hook has it.  NULL: none. */
extern int (*br_cleaner_io_hook)(struct br_fs *fs, bool write, uint64_t off,
				 uint64_t len, int res);
/* Test hook: called by a pass once its copies are written and synced and
 * their RELOC records logged and applied, before those records are
 * synced (no filesystem lock held).  NULL: none. */
extern void (*br_cleaner_synced_hook)(struct br_fs *fs);

#endif /* BR_CLEANER_H */
