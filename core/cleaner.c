/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The cleaner; see cleaner.h for what a pass does and why it is safe.
 */
#include "cleaner.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "fsys_int.h"
#include "segment.h"
#include "util.h"

struct br_cleaner {
	pthread_mutex_t run_lock;	/* one pass at a time; protects
					 * segbuf, cand, vict */
	uint8_t *segbuf;		/* one segment, block aligned */
	struct br_seg_cand *cand;	/* nseg entries */
	struct br_clean_scored *vict;	/* nseg entries */
	uint64_t *lastgen;		/* nseg: gen when last a victim */
	uint64_t *badgen;		/* nseg: gen + 1 when reading it as a
					 * victim failed (0: never): not
					 * picked again in that use */
	unsigned low_pct;		/* br_cleaner_start's (0: the default,
					 * thresholds()) */
	bool started;			/* the thread runs */
	uint64_t now;			/* the log's newest seq at the last
					 * pick (the head's wrote) */

	/* The second head (run_lock): moved data is gathered in obuf (one
	 * log buffer, block aligned) and written at byte hoff of segment
	 * head; pv lists what the pass copied, switched after the sync. */
	uint8_t *obuf;
	uint32_t obuf_size, olen;	/* capacity; record bytes after the
					 * header */
	uint64_t oage;			/* newest victim seq in obuf */
	uint64_t head, hoff;		/* segment (0: none), bytes used */
	uint64_t oseq;			/* last off-chain seq (low bits) */
	/* the BR_REC_DATA_VEC record open in obuf (ropen): it starts at
	 * rstart (record bytes), is about rino, and its entries wait in
	 * rent until it is closed (vec_close) */
	bool ropen, vec_ok;		/* vec_ok: the feature bit is set */
	uint32_t rstart, rcount, relen;
	uint32_t rlast;			/* the last entry, in rent, */
	uint64_t rlast_off, rlast_end;	/* its piece's offset and the end
					 * it was encoded after */
	uint64_t rino, rend;
	uint8_t rent[BR_BLOCK_SIZE];
	struct piece *pv;
	size_t np, pcap;
	struct fs_move *mv;		/* one inode's moves, for the log */
	size_t mvcap;
	struct mv_range *rv;		/* live ranges of one record */
	size_t nr, rcap;
	uint64_t pass_moved;		/* bytes switched by this pass */
	size_t pass_bad;		/* its victims whose read failed */
	uint64_t last_pos;		/* position of the newest RELOC record
					 * (0: none since the last sync) */

	struct br_worker w;		/* the background thread */

	/* relaxed counters: statistics and the hold (an estimate writers
	 * read without ordering; see space_check in core/fsys.c) */
	_Atomic uint64_t held;
	_Atomic uint64_t runs, sync_runs, cleaned, moved, no_progress;
	_Atomic uint64_t reused;	/* victims reused during their pass */
	_Atomic uint64_t ckpt_bytes, copied, heads, recleaned;
	_Atomic uint64_t unreadable;	/* victims whose read failed */
};

/* A range copied into the head: file bytes [m.off, m.off + m.len) of
 * ino that were durable at m.old_addr (in victim mv.seg) and now also
 * lie at m.new_addr. */
struct piece {
	uint64_t ino;
	struct fs_move mv;
};

struct mv_range {
	uint64_t off, len;
};

void (*br_cleaner_moved_hook)(struct br_fs *fs, size_t moved_victims);
void (*br_cleaner_synced_hook)(struct br_fs *fs);
int (*br_cleaner_io_hook)(struct br_fs *fs, bool write, uint64_t off,
			  uint64_t len, int res);

/* The result of one of the cleaner's own device I/Os, as the test hook
 * would have it. */
static int clean_io(struct br_fs *fs, bool write, uint64_t off,
		    uint64_t len, int res)
{
	return br_cleaner_io_hook ? br_cleaner_io_hook(fs, write, off, len,
						       res) : res;
}

/*
 * The copies written so far reach the disk before any record points at
 * them (its flush).  A failed write or flush of the copies means the
 * device is failing: latched as a failed write of the log is (the
 * filesystem turns read-only; what was durable stays, as nothing
 * points at copies that are not), where the thread used to retry every
 * 100 ms and writers got EIO from their passes while the rest went on.
 */
static int copies_failed(struct br_fs *fs, const char *what, uint64_t at,
			 int err)
{
	br_store_fail(fs->store, -EIO);
	fs_io_failed(fs, what, at, err);
	return -EIO;
}

static int copies_sync(struct br_fs *fs)
{
	int err = clean_io(fs, true, 0, 0, fdatasync(fs->fd) ? -errno : 0);

	return err ? copies_failed(fs, "flushing the cleaner's copies", 0,
				   err) : 0;
}

/* ------------------------------------------------------------------ */
/* Victims                                                              */
/* ------------------------------------------------------------------ */

/* Victims ordered before a pass walks them (pick); more only when the
 * walk gets past them */
#define CLEAN_RANK_FIRST 64u

static int by_score(const void *a, const void *b)
{
	const struct br_clean_scored *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->seg < y->seg ? -1 : x->seg > y->seg;
}

static void swap_scored(struct br_clean_scored *a, struct br_clean_scored *b)
{
	struct br_clean_scored t = *a;

	*a = *b;
	*b = t;
}

/*
 * Quickselect (median of three, Lomuto) for the k-th place, then a sort
 * of the k before it.  Invariant: k - 1 lies in [lo, hi), everything
 * before lo ranks above everything from lo on, everything from hi on
 * below everything before hi (by_score is a total order: ties go by
 * segment number).
 */
size_t br_clean_rank(struct br_clean_scored *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n;

	if (k >= n) {
		qsort(v, n, sizeof(*v), by_score);
		return n;
	}
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2, at = lo;

		if (by_score(&v[mid], &v[lo]) < 0)
			swap_scored(&v[mid], &v[lo]);
		if (by_score(&v[hi - 1], &v[lo]) < 0)
			swap_scored(&v[hi - 1], &v[lo]);
		if (by_score(&v[mid], &v[hi - 1]) < 0)
			swap_scored(&v[mid], &v[hi - 1]);
		/* v[hi - 1]: the median of the three, the pivot */
		for (size_t i = lo; i < hi - 1; i++)
			if (by_score(&v[i], &v[hi - 1]) < 0)
				swap_scored(&v[i], &v[at++]);
		swap_scored(&v[at], &v[hi - 1]);
		if (at == k - 1)
			break;
		if (at < k - 1)
			lo = at + 1;
		else
			hi = at;
	}
	qsort(v, k, sizeof(*v), by_score);
	return k;
}

/* What is left of the open head (0: none). */
static uint64_t head_room(struct br_fs *fs, struct br_cleaner *c)
{
	uint64_t seg = fs->segs->seg_size;

	return c->head ? seg - (c->hoff < seg ? c->hoff : seg) : 0;
}

/* Bytes of log that moving `live` bytes takes: data record headers in
 * the head and RELOCS entries in the log (24 and at most 40 bytes per
 * piece of >= 4 KiB in the worst case that matters) and buffer tails. */
static uint64_t move_cost(uint64_t live)
{
	return live + live / 64 + live / 100 + 2 * BR_BLOCK_SIZE;
}

/* Step 1's score (cleaner.h) of a segment `live` bytes of `seg` full,
 * last written at seq `wrote`, the clock being `now`: -ln u / t is the
 * rate its live part has been dying at (0 < live <= seg: candidates
 * hold live data). */
double br_clean_score(uint64_t live, uint64_t seg, uint64_t now,
		      uint64_t wrote)
{
	double u = (double)live / (double)seg;
	double t = now > wrote ? (double)(now - wrote) + 1.0 : 1.0;
	double rate = -log(u);

	if (rate < 1e-9)
		rate = 1e-9;
	return (1.0 - u) / (1.0 + u) * pow(t / rate, BR_CLEAN_RATE_EXP);
}

/*
 * Choose victims (run_lock held), best score first, until they gain
 * `want` segments (what they free less what moving their live data
 * takes) or the budget is spent.  Returns how many (in c->vict), 0 if no
 * pass is worth it; *cost gets the log bytes the pass will write.  Only
 * segments with nothing newer than the newest durable checkpoint's roll
 * point are taken (the others would not be free after the pass);
 * when no pass is worth it, *blocked says whether a checkpoint would
 * make another segment a victim.  bg: the background thread's pass,
 * which above the writers' edge takes no more segments than leave
 * writers one beyond what the pass holds (pass: `held`).
 */
static size_t pick(struct br_fs *fs, struct br_cleaner *c, uint64_t want,
		   bool bg, uint64_t *cost, bool *blocked)
{
	struct br_segtab *t = fs->segs;
	uint64_t seg = t->seg_size, now, nfree, budget, used, roll;
	uint64_t vmax = BR_SEG_VICTIM_MAX(seg), blocked_gain = 0, ck;
	uint64_t gain_min, granted, keep, res, min_live;
	size_t n, nv, nvict, ranked;
	size_t nblocked;
	bool full = false, edge;

	roll = br_seg_ckpt_seq(t);
	n = br_seg_candidates(t, c->cand, t->nseg, &now);
	c->now = now;
again:
	nv = nvict = nblocked = 0;
	blocked_gain = 0;
	min_live = seg;
	for (size_t i = 0; i < n; i++) {
		if (c->cand[i].live > vmax)
			continue;	/* gains less than its move costs */
		if (c->badgen[c->cand[i].seg] == c->cand[i].gen + 1)
			continue;	/* unreadable (move_segment) */
		if (c->cand[i].newest >= roll) {
			blocked_gain += seg - c->cand[i].live;
			nblocked++;
			continue;
		}
		c->vict[nv].score = br_clean_score(c->cand[i].live, seg, now,
						   c->cand[i].wrote);
		if (c->cand[i].live < min_live)
			min_live = c->cand[i].live;
		c->vict[nv].seg = c->cand[i].seg;
		c->vict[nv].live = c->cand[i].live;
		c->vict[nv].newest = c->cand[i].newest;
		c->vict[nv].gen = c->cand[i].gen;
		nv++;
	}
	nfree = br_seg_nfree(t);
	res = fs_user_reserve(fs);
	edge = nfree <= res + BR_CLEAN_SYNC_SEGS;
	/* A checkpoint would make the blocked candidates victims: worth it
	 * only when what they would give back pays for it (its log bytes
	 * and a segment's worth of moving); at the writers' edge as soon as
	 * they give back more than its log bytes (statfs counts their dead
	 * space: without it, a fill after a delete got ENOSPC 4 MiB short
	 * of what df promised) */
	ck = br_ckpt_guess(fs);
	*blocked = nblocked &&
		   blocked_gain > (edge ? ck + seg / 8 : 2 * ck + seg);
	/* An eighth of the log written since the roll point: take the
	 * checkpoint now, while there is room for it, rather than when the
	 * older victims run out (at ENOSPC's edge).  At most one checkpoint
	 * per eighth of the log. */
	if (*blocked && nblocked * 8 >= t->nseg &&
	    nfree > BR_SEG_RESERVE + 1 &&
	    (nfree - BR_SEG_RESERVE - 1) * seg > 2 * ck)
		return 0;
	if (!nv)
		goto fuller;
	/* Passes take a few victims: order only the best CLEAN_RANK_FIRST,
	 * the rest if the walk below gets past them, and stop it once
	 * nothing left fits.  At 131072 candidates (1 TiB of 8 MiB
	 * segments) sorting them all took 24 ms a pass, where scoring them
	 * takes 3.4 and ranking 1.4 (tests/bench/bench_pick.c). */
	ranked = br_clean_rank(c->vict, nv, CLEAN_RANK_FIRST);
	/* BR_CLEAN_META_SEGS stay free for metadata records (unlink,
	 * truncate) whatever happens to this pass: its victims are free only
	 * after its last record is durable (its own RELOC records are in
	 * move_cost).  Bytes granted to writes in progress are theirs.
	 * While candidates wait for a checkpoint, moves also leave room for
	 * it and a segment to move into after it: passes that spent that
	 * room on other victims left no way to free the waiting ones. */
	keep = BR_CLEAN_META_SEGS + (*blocked ? br_ckpt_segs(fs) + 1 : 0);
	granted = fs_granted(fs);
	budget = nfree > keep ? (nfree - keep) * seg : 0;
	budget = budget > granted ? budget - granted : 0;
	budget += head_room(fs, c);	/* it takes moves first */
	/* The thread's pass, above the writers' edge: what it holds is
	 * kept from writers until it ends, so a pass that held the room
	 * above the reserve had every write wait for it (90 % of 1 GiB,
	 * 4 KiB overwrites: half the writers' time in 25 ms stalls).  It
	 * leaves them a segment (held counts one for its records); a
	 * smaller pass is worth its flushes, and nearer the edge the
	 * thread runs whole ones (clean_thread). */
	if (bg && !edge) {
		uint64_t cap = nfree > res + 2 ? (nfree - res - 2) * seg : 0;

		cap = cap > granted ? cap - granted : 0;
		cap += head_room(fs, c);
		if (budget > cap)
			budget = cap;
	}
	used = 0;
	for (size_t i = 0; i < nv && used + move_cost(min_live) <= budget;
	     i++) {
		uint64_t m;

		if (i == ranked)
			ranked += br_clean_rank(c->vict + i, nv - i, nv - i);
		m = move_cost(c->vict[i].live);
		if (used + m > budget)
			continue;	/* a smaller one may still fit */
		used += m;
		c->vict[nvict++] = c->vict[i];
		if (nvict * seg >= used + want * seg)
			break;		/* gains what was asked */
	}
	/* worth it only if it gains at least an eighth of a segment more
	 * than it writes (moves and RELOC records: move_cost); at the
	 * writers' edge (BR_CLEAN_SYNC_SEGS) any gain of a few blocks, or
	 * overwrites of a full log would get ENOSPC with dead space left:
	 * with two segments of room and victims 90 % live a pass gains a
	 * tenth of a segment, and the next one starts from there */
	gain_min = edge ? 4 * BR_BLOCK_SIZE : seg / 8;
	if (!nvict || nvict * seg < used + gain_min)
		goto fuller;
	*blocked = false;
	*cost = used;
	return nvict;
fuller:
	/* The limit is a preference, not a wall: when the segments at most
	 * 7/8 live give no pass worth running, the fuller ones are all the
	 * dead space there is (a sequential fill overwritten at random
	 * spreads it thinly: at 90 % full no segment gets an eighth dead
	 * before the free ones run out, and every overwrite got ENOSPC with
	 * ~20 MiB reclaimable).  The gain rule above still keeps a pass from
	 * churning; the batch just has to be bigger. */
	if (full)
		return 0;
	full = true;
	vmax = seg;
	goto again;
}

/* ------------------------------------------------------------------ */
/* Moving                                                               */
/* ------------------------------------------------------------------ */

/* Collect the pieces of [off, off+len) that are durable exactly at
 * addr + (piece off - off): still the bytes of the record at addr
 * (map_lock held). */
struct live_ctx {
	struct br_cleaner *c;
	uint64_t addr, off;
	int err;
};

static int live_piece(void *ctx, uint64_t off, uint64_t len,
		      const struct br_extent *e, uint64_t delta)
{
	struct live_ctx *lc = ctx;
	struct br_cleaner *c = lc->c;
	struct br_loc l;

	if (!e)
		return 0;
	l = br_extent_loc(e, delta);
	if (l.kind != BR_EXT_DURABLE || l.v != lc->addr + (off - lc->off))
		return 0;
	if (c->nr && c->rv[c->nr - 1].off + c->rv[c->nr - 1].len == off) {
		c->rv[c->nr - 1].len += len;
		return 0;
	}
	if (br_grow(&c->rv, &c->rcap, c->nr + 1, sizeof(*c->rv), 16)) {
		lc->err = -ENOMEM;
		return 1;
	}
	c->rv[c->nr++] = (struct mv_range){ off, len };
	return 0;
}

/* c->rv = the parts of data record (ino, off, n bytes at log address
 * addr) that the map still points at (map_lock held).  0 or -ENOMEM. */
static int live_ranges(struct br_fs *fs, struct br_cleaner *c, uint64_t ino,
		       uint64_t addr, uint64_t off, uint64_t n)
{
	struct br_inode *in = br_map_inode_find(&fs->map, ino);
	struct live_ctx lc = { .c = c, .addr = addr, .off = off };

	c->nr = 0;
	if (!in || !S_ISREG(in->mode) || off >= in->size)
		return 0;	/* gone, or cut off: dead */
	if (n > in->size - off)
		n = in->size - off;
	br_extmap_walk(&in->ext, off, n, live_piece, &lc);
	return lc.err;
}

static int log_relocs(struct br_fs *fs, struct br_cleaner *c);

/* Close the open BR_REC_DATA_VEC record: its entries after its bytes,
 * then its header. */
static void vec_close(struct br_cleaner *c)
{
	const uint32_t hdr = sizeof(struct br_buf_header);
	struct br_rec_data_vec *r = (void *)(c->obuf + hdr + c->rstart);
	uint32_t len;

	if (!c->ropen)
		return;
	memcpy(c->obuf + hdr + c->olen, c->rent, c->relen);
	len = c->olen + c->relen - c->rstart;
	memset(c->obuf + hdr + c->olen + c->relen, 0,
	       br_rec_padded(len) - len);
	memset(r, 0, sizeof(*r));
	r->h.type = br_le16_put(BR_REC_DATA_VEC);
	r->h.len = br_le32_put(len);
	r->h.ino = br_le64_put(c->rino);
	r->count = br_le32_put(c->rcount);
	r->elen = br_le32_put(c->relen);
	c->olen = c->rstart + br_rec_padded(len);
	c->ropen = false;
}

/* Write the gathered buffer at the head.  0 or -errno. */
static int head_flush(struct br_fs *fs, struct br_cleaner *c)
{
	struct br_buf_header *bh = (void *)c->obuf;
	uint64_t at = c->head * fs->segs->seg_size + c->hoff;
	uint32_t used, span;
	int err;

	vec_close(c);
	if (!c->olen)
		return 0;
	if (!c->vec_ok) {	/* before any reader can meet the records */
		err = fs_feature_set(fs, BR_FEATURE_INCOMPAT_DATA_VEC);
		if (err)
			return err;
		c->vec_ok = true;
	}
	used = (uint32_t)sizeof(*bh) + c->olen;
	span = (used + BR_BLOCK_SIZE - 1) & ~(BR_BLOCK_SIZE - 1);
	memset(c->obuf + used, 0, span - used);
	memset(bh, 0, sizeof(*bh));
	bh->magic = br_le32_put(BR_BUF_MAGIC);
	bh->seq = br_le64_put(BR_SEQ_OFF_CHAIN | ++c->oseq);
	bh->len = br_le32_put(c->olen);
	bh->span = br_le32_put(span);
	bh->fsid = br_le64_put(fs->fsid);
	bh->crc = br_le32_put(br_crc32c(0, c->obuf + 4, used - 4));
	err = clean_io(fs, true, at, span,
		       br_pwrite_full(fs->fd, c->obuf, span, at));
	if (err)
		return copies_failed(fs, "writing the cleaner's copies", at,
				     err);
	br_seg_age(fs->segs, c->head, c->oage, c->now);
	atomic_fetch_add_explicit(&c->copied, span, memory_order_relaxed);
	c->hoff += span;
	c->olen = 0;
	c->oage = 0;
	return 0;
}

/* A pass took a segment for its head: what it holds (pass, `held`)
 * counted it, and the free segments no longer do.  Counting it twice
 * kept writers off room the pass did not need: they waited for the pass
 * to end (4 KiB overwrites at 90 % full spent a quarter of their time
 * waiting on run_lock).  The last one stays for the pass's records. */
static void head_taken(struct br_cleaner *c)
{
	uint64_t h = atomic_load_explicit(&c->held, memory_order_relaxed);

	if (h > 1)	/* only the pass (run_lock) writes it */
		atomic_store_explicit(&c->held, h - 1, memory_order_relaxed);
}

/* Room the gathered buffer may grow to (header included). */
static uint64_t head_cap(struct br_fs *fs, struct br_cleaner *c)
{
	uint64_t room = head_room(fs, c);

	return room < c->obuf_size ? room : c->obuf_size;
}

/*
 * Copy n bytes (file offset off of ino, at log address src in victim vi)
 * into the head, as pieces of BR_REC_DATA_VEC records in off-chain
 * buffers (one record per inode and buffer while its entries fit in
 * rent); opens a new head segment when the current one is full.  0,
 * -ENOSPC (no free segment: the pick's budget was wrong), -ENOMEM or
 * -errno of a write.
 */
static int head_put(struct br_fs *fs, struct br_cleaner *c, uint64_t ino,
		    uint64_t off, const uint8_t *data, uint64_t n,
		    uint64_t src, size_t vi)
{
	const uint32_t hdr = sizeof(struct br_buf_header);
	const uint32_t rh = sizeof(struct br_rec_data_vec);
	/* a record's entries and padding, beside its bytes */
	const uint32_t tail = BR_VEC_ENT_MAX + BR_REC_ALIGN;
	int err;

	while (n) {
		uint64_t cap = head_cap(fs, c), k, used, free_b;

		if (cap < hdr + rh + tail + BR_BLOCK_SIZE) {
			err = head_flush(fs, c);
			if (!err && c->head &&
			    head_cap(fs, c) >= hdr + rh + tail + BR_BLOCK_SIZE)
				continue;
			/* Only the open head is kept from the allocator:
			 * relocate what this one holds before leaving it (a
			 * segment nothing points at yet would be free). */
			if (!err && c->np)
				err = copies_sync(fs);
			if (!err)
				err = log_relocs(fs, c);
			if (!err)
				err = br_seg_take_head(fs->segs, &c->head);
			if (err)
				return err;
			head_taken(c);
			c->hoff = 0;
			atomic_fetch_add_explicit(&c->heads, 1,
						  memory_order_relaxed);
			continue;
		}
		if (c->ropen && (c->rino != ino ||
				 c->relen + BR_VEC_ENT_MAX > sizeof(c->rent)))
			vec_close(c);
		used = hdr + c->olen + (c->ropen ? c->relen : rh) + tail;
		free_b = cap > used ? cap - used : 0;
		if (free_b < 512) {
			err = head_flush(fs, c);
			if (err)
				return err;
			continue;
		}
		k = n < free_b ? n : free_b;
		if (br_grow(&c->pv, &c->pcap, c->np + 1, sizeof(*c->pv), 256))
			return -ENOMEM;
		if (!c->ropen) {
			c->ropen = true;
			c->rstart = c->olen;
			c->rino = ino;
			c->rcount = c->relen = 0;
			c->rend = 0;
			c->olen += rh;
		}
		memcpy(c->obuf + hdr + c->olen, data, k);
		if (c->rcount && off == c->rend) {
			/* what follows the last piece in the file and in the
			 * record is that piece (the map merges the two: fsck
			 * takes a piece for a range of data) */
			c->relen = c->rlast;
			c->rend = c->rlast_end;
			c->relen += br_vec_ent_put(c->rent + c->relen,
						   &c->rend, c->rlast_off,
						   off + k - c->rlast_off);
		} else {
			c->rlast = c->relen;
			c->rlast_off = off;
			c->rlast_end = c->rend;
			c->relen += br_vec_ent_put(c->rent + c->relen,
						   &c->rend, off, k);
			c->rcount++;
		}
		c->pv[c->np++] = (struct piece){ .ino = ino, .mv = {
			.m = { .off = off, .len = k, .old_addr = src,
			       .new_addr = c->head * fs->segs->seg_size +
					   c->hoff + hdr + c->olen },
			.seg = c->vict[vi].seg, .gen = c->vict[vi].gen } };
		if (c->vict[vi].newest > c->oage)
			c->oage = c->vict[vi].newest;
		c->olen += (uint32_t)k;
		off += k;
		data += k;
		src += k;
		n -= k;
	}
	return 0;
}

/* Copy the live parts of data piece (ino, file offset fo, n bytes at
 * `bytes`, log address a) of victim vi into the head.  0, 1 if the
 * victim was handed out again since its candidate row (the rest of it
 * is stale: stop), or -errno. */
static int move_piece(struct br_fs *fs, struct br_cleaner *c, size_t vi,
		      uint64_t ino, uint64_t fo, const uint8_t *bytes,
		      uint64_t n, uint64_t a)
{
	bool reused;
	int err;

	pthread_rwlock_rdlock(&fs->map_lock);
	reused = br_seg_gen(fs->segs, c->vict[vi].seg) != c->vict[vi].gen;
	err = reused ? 0 : live_ranges(fs, c, ino, a, fo, n);
	pthread_rwlock_unlock(&fs->map_lock);
	if (reused) {
		atomic_fetch_add_explicit(&c->reused, 1, memory_order_relaxed);
		return 1;
	}
	for (size_t i = 0; i < c->nr && !err; i++)
		err = head_put(fs, c, ino, c->rv[i].off,
			       bytes + (c->rv[i].off - fo), c->rv[i].len,
			       a + (c->rv[i].off - fo), vi);
	return err;
}

/*
 * Walk the buffers of victim vi (read into c->segbuf) and copy the live
 * bytes of its data records and data vectors into the head.  Buffers
 * tile the segment from its start; the walk stops at the first header
 * that does not hold or whose seq is not above the previous one (bytes
 * left from an earlier use of the segment: their data is dead, the
 * address check skips it).
 *
 * Liveness is judged under map_lock (read) with the victim's reuse
 * generation (segment.h): if the victim was handed out again since its
 * candidate row, the copy is stale and the rest is dropped.  Nothing in
 * the map changes here: the copies become the file's data when their
 * RELOCS records are applied (log_relocs), after they are durable.
 */
static int move_segment(struct br_fs *fs, struct br_cleaner *c, size_t vi)
{
	uint64_t seg = fs->segs->seg_size, base = c->vict[vi].seg * seg;
	uint64_t prev = 0;
	uint64_t off = 0;
	int err;

	err = clean_io(fs, false, base, seg,
		       br_pread_full(fs->rfd, c->segbuf, seg, base));
	if (err == -ENODATA)
		return 0;	/* a short image: nothing written there */
	if (err) {
		/* A bad spot on the device: the victim's data stays where
		 * it is (the segment stays in use, and reads of it get the
		 * error too), the pass goes on with the others, and it is
		 * not picked again in this use, where every pass picked it
		 * first and failed.  Said once per segment. */
		c->badgen[c->vict[vi].seg] = c->vict[vi].gen + 1;
		c->pass_bad++;
		atomic_fetch_add_explicit(&c->unreadable, 1,
					  memory_order_relaxed);
		fs_say(LOG_WARNING, "reading segment %llu (byte %llu) to clean it failed: %s; it is left as it is",
		       (unsigned long long)c->vict[vi].seg,
		       (unsigned long long)base, strerror(-err));
		return 0;
	}
	while (off + sizeof(struct br_buf_header) <= seg) {
		const struct br_buf_header *bh = (const void *)(c->segbuf + off);
		uint32_t span = br_le32_get(bh->span), len = br_le32_get(bh->len);
		uint64_t seq = br_le64_get(bh->seq);
		const uint8_t *p;
		uint32_t ro = 0;

		if (br_le32_get(bh->magic) != BR_BUF_MAGIC ||
		    br_le64_get(bh->fsid) != fs->fsid || seq <= prev ||
		    span == 0 || span % BR_BLOCK_SIZE || span > seg - off ||
		    len > span - sizeof(*bh) ||
		    br_crc32c(0, c->segbuf + off + 4, sizeof(*bh) - 4 + len) !=
		    br_le32_get(bh->crc))
			break;
		prev = seq;
		p = c->segbuf + off + sizeof(*bh);
		while (ro + sizeof(struct br_rec_header) <= len) {
			const struct br_rec_header *h = (const void *)(p + ro);
			uint32_t rl = br_le32_get(h->len);

			if (rl < sizeof(*h) || rl > len - ro ||
			    br_rec_padded(rl) > len - ro)
				break;	/* framing: the CRC held, so this
					 * is a bug, not disk damage; stop */
			if (br_le16_get(h->type) == BR_REC_DATA &&
			    rl > sizeof(struct br_rec_data)) {
				const struct br_rec_data *d = (const void *)h;

				err = move_piece(fs, c, vi,
						 br_le64_get(h->ino),
						 br_le64_get(d->off),
						 (const uint8_t *)(d + 1),
						 rl - sizeof(*d),
						 base + off + sizeof(*bh) + ro +
						 sizeof(*d));
			} else if (br_le16_get(h->type) == BR_REC_DATA_VEC) {
				struct br_vec_it it;
				uint64_t fo, n;
				uint32_t at;

				if (br_vec_begin(&it, h, rl))
					break;	/* as framing, above */
				while (!err &&
				       br_vec_next(&it, &fo, &n, &at) > 0)
					err = move_piece(fs, c, vi,
						br_le64_get(h->ino), fo,
						(const uint8_t *)h + at, n,
						base + off + sizeof(*bh) + ro +
						at);
			}
			if (err > 0)
				return 0;	/* the victim was reused */
			if (err)
				return err;
			ro += br_rec_padded(rl);
		}
		off += span;
	}
	return 0;
}

/* Inode, then copy order (the copies' addresses grow as they are made). */
static int by_inode(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->mv.m.new_addr < y->mv.m.new_addr ? -1 :
	       x->mv.m.new_addr > y->mv.m.new_addr;
}

/*
 * Point the map at the copies (run_lock held; the copies are durable):
 * the pieces of each inode, in the order they were copied, go into
 * BR_REC_RELOCS records, logged and applied like any change
 * (fs_log_relocs: under the inode's lock, reserve, apply, commit).  Each
 * piece's bytes still durable at their old address, in a victim not
 * handed out since its candidate row, switch to the copy; what a user
 * changed meanwhile stays, and a piece that died whole costs nothing.
 * Adds the bytes switched to pass_moved and notes the last record's
 * position in last_pos (the pass syncs it: its victims are free once it
 * is durable, segment.h "Reuse").  0 or -errno.
 */
static int log_relocs(struct br_fs *fs, struct br_cleaner *c)
{
	/* before the first record (format.h) */
	int err = c->np ? fs_feature_set(fs, BR_FEATURE_INCOMPAT_RELOC |
					     BR_FEATURE_INCOMPAT_RELOCS) : 0;

	if (c->np)
		qsort(c->pv, c->np, sizeof(*c->pv), by_inode);
	for (size_t i = 0, j; i < c->np && !err; i = j) {
		for (j = i; j < c->np && c->pv[j].ino == c->pv[i].ino; j++) {
			if (br_grow(&c->mv, &c->mvcap, j - i + 1,
				    sizeof(*c->mv), 256)) {
				err = -ENOMEM;
				break;
			}
			c->mv[j - i] = c->pv[j].mv;
		}
		if (!err)
			err = fs_log_relocs(fs, c->pv[i].ino, c->mv, j - i,
					    &c->last_pos, &c->pass_moved);
	}
	c->np = 0;
	return err;
}

/* A checkpoint taken by the cleaner (its blob counted in ckpt_bytes; the
 * log's bytes over the call also hold what users wrote meanwhile:
 * wa-bench at 50 % uniform counted 0.009 of the user bytes that way,
 * where the blobs are 0.004). */
static int clean_ckpt(struct br_fs *fs, struct br_cleaner *c)
{
	struct br_ckpt_stats s1, s2;
	int err;

	br_ckpt_stats(fs, &s1);
	err = br_ckpt_write(fs);
	br_ckpt_stats(fs, &s2);
	if (s2.written != s1.written)
		atomic_fetch_add_explicit(&c->ckpt_bytes, s2.last_blob_bytes,
					  memory_order_relaxed);
	return err;
}

/*
 * One pass (run_lock held): pick, move, relocate, sync.  Returns the
 * number of victims cleaned (> 0), 0 if nothing was worth doing, or
 * -errno.  bg: the thread's, kept to writers' room (pick); when that
 * finds nothing it returns 0 at once (no checkpoint, no sync), and the
 * thread may run an unbounded one.
 */
static int pass(struct br_fs *fs, struct br_cleaner *c, uint64_t want,
		bool bg)
{
	struct br_seg_space sp;
	uint64_t cost = 0, moved = 0, seg = fs->segs->seg_size, hr;
	bool blocked = false;
	size_t nv;
	int err = 0, serr;

	/* Read-only after a failed write (latched): every record would be
	 * refused, after the victims were read and copied for nothing */
	err = br_store_error(fs->store);
	if (err)
		return err;
	nv = pick(fs, c, want, bg, &cost, &blocked);
	if (!nv && bg)
		return 0;	/* the cap: the caller may try without it */
	if (!nv && blocked &&
	    br_seg_nfree(fs->segs) > br_ckpt_segs(fs) + BR_CLEAN_META_SEGS) {
		/* the victims worth taking hold records newer than the
		 * checkpoint's roll point: they could not be freed before
		 * the next one, so take it now (checkpoint.h).  From the
		 * reserve if need be: it is there for checkpoints, and what
		 * the victims give back (pick: more than the checkpoint at
		 * the writers' edge, twice it elsewhere) refills it.  Only
		 * while a segment to move into is left after it: a
		 * checkpoint that took the last one freed victims no pass
		 * could clean (fs_user_reserve keeps that much) */
		err = clean_ckpt(fs, c);
		if (err)
			return err;
		nv = pick(fs, c, want, bg, &cost, &blocked);
	}
	if (!nv) {
		/* empty segments wait for the records that emptied them to
		 * be durable, or for a checkpoint */
		atomic_fetch_add_explicit(&c->no_progress, 1,
					  memory_order_relaxed);
		err = br_store_sync_all(fs->store);
		if (!err) {
			br_seg_space(fs->segs, &sp);
			if (br_ckpt_pays(fs, sp.ckpt_segs))
				err = clean_ckpt(fs, c);
		}
		return err ? err : 0;
	}
	/* the segments its moves take beyond what is left of the head, and
	 * one for its records */
	hr = head_room(fs, c);
	atomic_store_explicit(&c->held,
			      (cost > hr ? (cost - hr + seg - 1) / seg : 0) + 1,
			      memory_order_relaxed);
	for (size_t i = 0; i < nv; i++) {
		/* picked again in the same use: an earlier pass left it */
		if (c->lastgen[c->vict[i].seg] == c->vict[i].gen)
			atomic_fetch_add_explicit(&c->recleaned, 1,
						  memory_order_relaxed);
		c->lastgen[c->vict[i].seg] = c->vict[i].gen;
	}
	c->np = 0;
	c->pass_moved = 0;
	c->pass_bad = 0;
	c->last_pos = 0;
	for (size_t i = 0; i < nv && !err; i++) {
		err = move_segment(fs, c, i);
		if (!err && br_cleaner_moved_hook)
			br_cleaner_moved_hook(fs, i + 1);
	}
	/* the copies are durable before any record points at them: a
	 * RELOC that survives a crash finds its copy */
	if (!err)
		err = head_flush(fs, c);
	if (!err && c->np)
		err = copies_sync(fs);
	if (err) {
		/* nothing of this head relocated: its tail is unknown,
		 * start over in a fresh segment next time */
		c->np = 0;
		c->olen = 0;
		c->ropen = false;
		c->hoff = fs->segs->seg_size;
	} else {
		err = log_relocs(fs, c);
	}
	if (!err && c->last_pos && br_cleaner_synced_hook)
		br_cleaner_synced_hook(fs);
	moved = c->pass_moved;
	/* even after a failed move: what was relocated frees its victims
	 * once its records are durable (segment.h, "Reuse"); no checkpoint */
	if (c->last_pos) {
		serr = br_store_sync(fs->store, c->last_pos);
		if (!err)
			err = serr;
		c->last_pos = 0;
	}
	atomic_store_explicit(&c->held, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->moved, moved, memory_order_relaxed);
	if (err)
		return err;
	atomic_fetch_add_explicit(&c->runs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->cleaned, nv - c->pass_bad,
				  memory_order_relaxed);
	return (int)nv;
}

/* ------------------------------------------------------------------ */
/* Triggers                                                             */
/* ------------------------------------------------------------------ */

int br_cleaner_run(struct br_fs *fs, unsigned nsegs)
{
	struct br_cleaner *c = fs->cleaner;
	uint64_t need = BR_SEG_RESERVE + nsegs;
	int err = 0, tries = 0;

	if (!c)
		return -ENOSPC;
	pthread_mutex_lock(&c->run_lock);
	while (br_seg_nfree(fs->segs) <= need) {
		int r;

		if (tries++ == 8) {	/* progress, but slow: let the
					 * caller re-check and come back */
			err = br_seg_nfree(fs->segs) > BR_SEG_RESERVE ? 0 :
			      -ENOSPC;
			break;
		}
		r = pass(fs, c, need + 1 - br_seg_nfree(fs->segs), false);
		if (r > 0)
			atomic_fetch_add_explicit(&c->sync_runs, 1,
						  memory_order_relaxed);
		if (r < 0) {
			err = r;
			break;
		}
		if (r == 0) {
			err = br_seg_nfree(fs->segs) > need ? 0 : -ENOSPC;
			break;
		}
	}
	pthread_mutex_unlock(&c->run_lock);
	return err;
}

uint64_t br_cleaner_held(struct br_fs *fs)
{
	return fs->cleaner ? atomic_load_explicit(&fs->cleaner->held,
						  memory_order_relaxed) : 0;
}

void br_cleaner_wait(struct br_fs *fs)
{
	if (fs->cleaner) {
		pthread_mutex_lock(&fs->cleaner->run_lock);
		pthread_mutex_unlock(&fs->cleaner->run_lock);
	}
}

/*
 * The thread's thresholds, free segments: it cleans while fewer than
 * *low are free, until *high are.  A percentage given at start is of the
 * log's segments.  The default follows the user reserve, which grows with
 * the checkpoint's size (fs_user_reserve): BR_CLEAN_LOW_ABOVE above it,
 * at most BR_CLEAN_LOW_PCT of the log but always above it (a 63-segment
 * log whose reserve a 6 MB blob made 9 had the thread wait for fewer
 * free segments than writers stop at).  At a fixed 6 the thread kept a
 * segment more free once a tighter checkpoint guess took one off the
 * reserve, and WA stayed where it was (90 % uniform: reserve 3.9 -> 3.0,
 * free 5.9 -> 5.7, WA 6.38).
 */
static void thresholds(struct br_fs *fs, uint64_t *low, uint64_t *high)
{
	struct br_cleaner *c = fs->cleaner;
	uint64_t log_segs = fs->segs->nseg - 1, lo, cap, res;

	if (c->low_pct) {
		lo = log_segs * c->low_pct / 100;
	} else {
		res = fs_user_reserve(fs);
		lo = res + BR_CLEAN_LOW_ABOVE;
		cap = log_segs * BR_CLEAN_LOW_PCT / 100;
		if (cap <= res)	/* never below where writers stop */
			cap = res + 1;
		if (lo > cap)
			lo = cap;
	}
	if (lo < BR_SEG_RESERVE + 2)
		lo = BR_SEG_RESERVE + 2;
	*low = lo;
	*high = lo + lo / 4 + 1;
}

int br_cleaner_wanted(struct br_fs *fs)
{
	uint64_t low, high;

	if (!fs->cleaner || !fs->cleaner->started)	/* set before the
							 * thread, then fixed */
		return 0;
	thresholds(fs, &low, &high);
	return br_seg_nfree(fs->segs) < low;
}

void br_cleaner_kick(struct br_fs *fs)
{
	struct br_cleaner *c = fs->cleaner;

	if (c)
		br_worker_kick(&c->w);
}

uint64_t br_clean_lack(uint64_t nfree, uint64_t low, uint64_t high,
		       bool active)
{
	uint64_t span = high - BR_SEG_RESERVE;

	if (nfree >= high || (!active && nfree >= low))
		return 0;
	return high - nfree < span ? high - nfree : span;
}

unsigned br_clean_pause(uint64_t nfree, uint64_t low, uint64_t high,
			uint64_t lack)
{
	uint64_t span = high - BR_SEG_RESERVE;

	if (nfree < low || 2 * lack >= span)
		return 0;
	return (unsigned)(20 - 40 * lack / span);
}

/*
 * Clean while free < low, until free >= high.  Each pass is sized to gain
 * what free lacks of high, no more (pick), and to leave writers room
 * (pick's bg; when nothing fits in it and free is below low, a whole
 * pass): every segment cleaned early
 * is dead space the others do not get to gather, and batches of
 * nseg/4 victims kept ~24 of 254 segments free at 50 % full, where
 * high is 8.  Between low and high the pause between passes shrinks
 * from 20 ms to none as free space nears the reserve; below low there
 * is none (a pause there let free space fall to the writers' edge, and
 * writers waited for passes).
 */
static void *clean_thread(void *arg)
{
	struct br_fs *fs = arg;
	struct br_cleaner *c = fs->cleaner;
	bool active = false;

	pthread_mutex_lock(&c->w.lock);
	while (!c->w.stop) {
		uint64_t nfree = br_seg_nfree(fs->segs), low, high, lack;
		unsigned ms;
		int r;

		thresholds(fs, &low, &high);
		lack = br_clean_lack(nfree, low, high, active);
		if (!lack) {
			active = false;
			br_worker_wait(&c->w, 100);
			continue;
		}
		active = true;
		pthread_mutex_unlock(&c->w.lock);
		pthread_mutex_lock(&c->run_lock);
		r = pass(fs, c, lack, true);
		if (r == 0 && br_seg_nfree(fs->segs) < low)
			r = pass(fs, c, lack, false);
		pthread_mutex_unlock(&c->run_lock);
		pthread_mutex_lock(&c->w.lock);
		if (c->w.stop)
			break;
		if (r <= 0) {	/* nothing to do or an error: do not spin */
			active = false;
			br_worker_wait(&c->w, 100);
		} else if ((ms = br_clean_pause(br_seg_nfree(fs->segs), low,
						high, lack))) {
			br_worker_wait(&c->w, ms);
		}
	}
	pthread_mutex_unlock(&c->w.lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Setup                                                                */
/* ------------------------------------------------------------------ */

int br_cleaner_init(struct br_fs *fs)
{
	struct br_cleaner *c = calloc(1, sizeof(*c));
	uint64_t nseg = fs->segs->nseg;

	if (!c)
		return -ENOMEM;
	c->cand = calloc(nseg, sizeof(*c->cand));
	c->vict = calloc(nseg, sizeof(*c->vict));
	c->lastgen = calloc(nseg, sizeof(*c->lastgen));
	c->badgen = calloc(nseg, sizeof(*c->badgen));
	c->obuf_size = fs->sb.buf_size;
	if (!c->cand || !c->vict || !c->lastgen || !c->badgen ||
	    posix_memalign((void **)&c->segbuf, BR_BLOCK_SIZE,
			   fs->segs->seg_size) ||
	    posix_memalign((void **)&c->obuf, BR_BLOCK_SIZE, c->obuf_size)) {
		free(c->segbuf);
		free(c->badgen);
		free(c->lastgen);
		free(c->cand);
		free(c->vict);
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->run_lock, NULL);
	br_worker_init(&c->w);
	fs->cleaner = c;
	return 0;
}

void br_cleaner_free(struct br_fs *fs)
{
	struct br_cleaner *c = fs->cleaner;

	if (!c)
		return;
	br_worker_destroy(&c->w);
	pthread_mutex_destroy(&c->run_lock);
	free(c->segbuf);
	free(c->obuf);
	free(c->badgen);
	free(c->lastgen);
	free(c->pv);
	free(c->mv);
	free(c->rv);
	free(c->cand);
	free(c->vict);
	free(c);
	fs->cleaner = NULL;
}

int br_cleaner_start(struct br_fs *fs, unsigned low_pct)
{
	struct br_cleaner *c = fs->cleaner;
	int err;

	if (!c)
		return 0;
	if (low_pct > 90)
		return -EINVAL;
	c->low_pct = low_pct;
	err = br_worker_start(&c->w, clean_thread, fs);
	c->started = !err;
	return err;
}

void br_cleaner_stop(struct br_fs *fs)
{
	if (fs->cleaner)
		br_worker_stop(&fs->cleaner->w);
}

void br_cleaner_stats(struct br_fs *fs, struct br_cleaner_stats *st)
{
	struct br_cleaner *c = fs->cleaner;
	uint64_t high;

	memset(st, 0, sizeof(*st));
	if (!c)
		return;
	st->runs = atomic_load_explicit(&c->runs, memory_order_relaxed);
	st->sync_runs = atomic_load_explicit(&c->sync_runs,
					     memory_order_relaxed);
	st->cleaned_segments = atomic_load_explicit(&c->cleaned,
						    memory_order_relaxed);
	st->moved_bytes = atomic_load_explicit(&c->moved,
					       memory_order_relaxed);
	st->no_progress = atomic_load_explicit(&c->no_progress,
					       memory_order_relaxed);
	st->reused_victims = atomic_load_explicit(&c->reused,
						  memory_order_relaxed);
	st->copied_bytes = atomic_load_explicit(&c->copied,
						memory_order_relaxed);
	st->ckpt_bytes = atomic_load_explicit(&c->ckpt_bytes,
					      memory_order_relaxed);
	st->heads = atomic_load_explicit(&c->heads, memory_order_relaxed);
	st->recleaned = atomic_load_explicit(&c->recleaned,
					     memory_order_relaxed);
	st->unreadable = atomic_load_explicit(&c->unreadable,
					      memory_order_relaxed);
	if (c->started)
		thresholds(fs, &st->low, &high);
}
