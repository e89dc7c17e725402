/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Segment usage, allocation and discard; see segment.h for the rules.
 */
#include "segment.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

static void seg_recount(struct br_segtab *t);

int br_seg_init(struct br_segtab *t, uint64_t nseg, uint64_t seg_size,
		int fd, bool discard)
{
	struct stat st;

	memset(t, 0, sizeof(*t));
	if (nseg < 2 || !seg_size)
		return -EINVAL;
	t->v = calloc(nseg, sizeof(*t->v));
	if (!t->v)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	{
		pthread_rwlockattr_t a;

		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&t->readers, &a);
		pthread_rwlockattr_destroy(&a);
	}
	t->nseg = nseg;
	t->seg_size = seg_size;
	t->ckpt_seq = 1;
	atomic_init(&t->wait_min, UINT64_MAX);
	t->fd = fd;
	t->discard = discard && fd >= 0;
	t->blkdev = fd >= 0 && !fstat(fd, &st) && S_ISBLK(st.st_mode);
	return 0;
}

void br_seg_destroy(struct br_segtab *t)
{
	if (!t->v)
		return;
	pthread_mutex_destroy(&t->lock);
	pthread_rwlock_destroy(&t->readers);
	free(t->v);
	t->v = NULL;
}

void br_seg_reset(struct br_segtab *t)
{
	pthread_mutex_lock(&t->lock);
	for (uint64_t i = 0; i < t->nseg; i++) {
		atomic_store_explicit(&t->v[i].live, 0, memory_order_relaxed);
		atomic_store_explicit(&t->v[i].newest, 0, memory_order_relaxed);
		atomic_store_explicit(&t->v[i].wrote, 0, memory_order_relaxed);
		atomic_store_explicit(&t->v[i].dead_pos, 0,
				      memory_order_relaxed);
	}
	t->ckpt_seq = 1;
	t->apply_pos = 0;
	atomic_store_explicit(&t->wait_min, UINT64_MAX, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
}

/* n durable bytes left segment s, killed by the record at apply_pos
 * (map_lock write held, or single-threaded). */
static void seg_kill(struct br_segtab *t, uint64_t s, uint64_t n)
{
	struct br_seg *g = &t->v[s];
	uint64_t dp = atomic_load_explicit(&g->dead_pos, memory_order_relaxed);
	uint64_t prev, w;

	if (t->apply_pos > dp) {
		dp = t->apply_pos;
		atomic_store_explicit(&g->dead_pos, dp, memory_order_relaxed);
	}
	/* release: dead_pos before live; pairs with the acquire load of
	 * live in seg_free (an allocator that sees 0 sees the killer) */
	prev = atomic_fetch_sub_explicit(&g->live, n, memory_order_release);
	if (prev != n)
		return;
	/* the segment emptied: the durable position reaching dead_pos can
	 * free it; lower the hint br_seg_nfree watches */
	w = atomic_load_explicit(&t->wait_min, memory_order_relaxed);
	while (dp < w && !atomic_compare_exchange_weak_explicit(&t->wait_min,
			&w, dp, memory_order_relaxed, memory_order_relaxed))
		;
}

/* Split [addr, addr+len) at segment boundaries; sign +1 / -1. */
static void seg_change(struct br_segtab *t, uint64_t addr, uint64_t len,
		       int sign)
{
	while (len) {
		uint64_t s = addr / t->seg_size;
		uint64_t n = (s + 1) * t->seg_size - addr;

		if (n > len)
			n = len;
		if (s < t->nseg) {
			/* relaxed: writers are serialised by map_lock; readers
			 * without it (allocator, statfs) take a snapshot that
			 * is only ever an estimate, except for the 0 test,
			 * which cannot race (see segment.h, "Reuse") */
			if (sign > 0)
				atomic_fetch_add_explicit(&t->v[s].live, n,
							  memory_order_relaxed);
			else
				seg_kill(t, s, n);
		}
		addr += n;
		len -= n;
	}
}

void br_seg_add(struct br_segtab *t, uint64_t addr, uint64_t len)
{
	seg_change(t, addr, len, 1);
}

void br_seg_sub(struct br_segtab *t, uint64_t addr, uint64_t len)
{
	seg_change(t, addr, len, -1);
}

void br_seg_placed(struct br_segtab *t, uint64_t addr, uint64_t seq)
{
	uint64_t s = addr / t->seg_size;

	if (s >= t->nseg)
		return;
	/* one writer at a time (segment.h); the allocator reads it under
	 * the lock, from the same serialised placement path or after a
	 * checkpoint that synced the buffer */
	if (atomic_load_explicit(&t->v[s].newest, memory_order_relaxed) < seq)
		atomic_store_explicit(&t->v[s].newest, seq,
				      memory_order_relaxed);
}

void br_seg_on_placed(void *ctx, uint64_t addr, uint64_t seq)
{
	br_seg_placed(ctx, addr, seq);
}

void br_seg_set_log(struct br_segtab *t, uint64_t cur_addr, uint64_t next_addr)
{
	pthread_mutex_lock(&t->lock);
	t->cur = cur_addr / t->seg_size;
	t->next = next_addr / t->seg_size;
	seg_recount(t);
	pthread_mutex_unlock(&t->lock);
}

/* Every position <= this is durable. */
static uint64_t seg_durable(const struct br_segtab *t)
{
	return t->store ? br_store_durable_pos(t->store) : UINT64_MAX;
}

/* lock held; dur: seg_durable(t), read once per scan */
static bool seg_free_at(const struct br_segtab *t, uint64_t s, uint64_t dur)
{
	const struct br_seg *g = &t->v[s];

	/* acquire: pairs with the release in seg_kill, so dead_pos is the
	 * one that took the last byte (see "Reuse") */
	return s > 0 && s < t->nseg && s != t->cur && s != t->next &&
	       s != t->chead && !g->busy &&
	       atomic_load_explicit(&g->live, memory_order_acquire) == 0 &&
	       atomic_load_explicit(&g->newest, memory_order_relaxed) <
	       t->ckpt_seq &&
	       atomic_load_explicit(&g->dead_pos, memory_order_relaxed) <= dur;
}

static bool seg_free(const struct br_segtab *t, uint64_t s)
{
	return seg_free_at(t, s, seg_durable(t));
}

/* lock held */
static void seg_recount(struct br_segtab *t)
{
	uint64_t n = 0, dur = seg_durable(t), w = UINT64_MAX;

	for (uint64_t s = 1; s < t->nseg; s++) {
		const struct br_seg *g = &t->v[s];
		uint64_t dp;

		if (seg_free_at(t, s, dur) || g->busy) {
			n++;
			continue;
		}
		dp = atomic_load_explicit(&g->dead_pos, memory_order_relaxed);
		if (dp > dur && dp < w &&
		    atomic_load_explicit(&g->live, memory_order_relaxed) == 0)
			w = dp;
	}
	atomic_store_explicit(&t->wait_min, w, memory_order_relaxed);
	atomic_store_explicit(&t->nfree, n, memory_order_relaxed);
}

uint64_t br_seg_nfree(struct br_segtab *t)
{
	/* A segment that waits only for durability becomes free without
	 * any call here: re-count once the durable position has reached
	 * the lowest such wait (cheap otherwise: two loads). */
	if (seg_durable(t) >= atomic_load_explicit(&t->wait_min,
						   memory_order_relaxed)) {
		pthread_mutex_lock(&t->lock);
		seg_recount(t);
		pthread_mutex_unlock(&t->lock);
	}
	return atomic_load_explicit(&t->nfree, memory_order_relaxed);
}

bool br_seg_is_free(struct br_segtab *t, uint64_t s)
{
	bool f;

	pthread_mutex_lock(&t->lock);
	f = seg_free(t, s);
	pthread_mutex_unlock(&t->lock);
	return f;
}

void br_seg_set_store(struct br_segtab *t, struct br_store *store)
{
	pthread_mutex_lock(&t->lock);
	t->store = store;
	seg_recount(t);
	pthread_mutex_unlock(&t->lock);
}

uint64_t br_seg_ckpt_seq(struct br_segtab *t)
{
	uint64_t v;

	pthread_mutex_lock(&t->lock);
	v = t->ckpt_seq;
	pthread_mutex_unlock(&t->lock);
	return v;
}

void br_seg_read_begin(struct br_segtab *t)
{
	if (t)
		pthread_rwlock_rdlock(&t->readers);
}

void br_seg_read_end(struct br_segtab *t)
{
	if (t)
		pthread_rwlock_unlock(&t->readers);
}

/* Wait for every read that may still use an extent looked up before now. */
static void seg_reader_barrier(struct br_segtab *t)
{
	pthread_rwlock_wrlock(&t->readers);
	pthread_rwlock_unlock(&t->readers);
}

int br_seg_alloc(void *ctx, uint64_t seg, uint64_t *next)
{
	struct br_segtab *t = ctx;
	uint64_t enter = seg / t->seg_size, pick = 0;

	seg_reader_barrier(t);
	pthread_mutex_lock(&t->lock);
	t->cur = enter;
	if (t->next == enter)
		t->next = 0;
	/* Lowest free segment after the current one, wrapping: the log
	 * sweeps the device, which spreads wear and keeps a fresh image
	 * written front to back. */
	for (uint64_t i = 1; i < t->nseg && !pick; i++) {
		uint64_t s = 1 + (enter - 1 + i) % (t->nseg - 1);

		if (seg_free(t, s))
			pick = s;
	}
	t->next = pick;
	if (pick) {
		atomic_fetch_add_explicit(&t->allocs, 1, memory_order_relaxed);
		/* before the store can place anything in it (see
		 * "Reuse generation"); release pairs with br_seg_gen */
		atomic_fetch_add_explicit(&t->v[pick].gen, 1,
					  memory_order_release);
		if (atomic_load_explicit(&t->v[pick].newest,
					 memory_order_relaxed))
			atomic_fetch_add_explicit(&t->reused, 1,
						  memory_order_relaxed);
		atomic_store_explicit(&t->v[pick].wrote, 0,
				      memory_order_relaxed);
		t->v[pick].discarded = false;
	}
	seg_recount(t);
	pthread_mutex_unlock(&t->lock);
	*next = pick * t->seg_size;
	return 0;
}

int br_seg_take_head(struct br_segtab *t, uint64_t *seg)
{
	uint64_t pick = 0, base;

	seg_reader_barrier(t);
	pthread_mutex_lock(&t->lock);
	t->chead = 0;
	base = t->cur ? t->cur : 1;
	for (uint64_t i = 1; i < t->nseg && !pick; i++) {
		uint64_t s = 1 + (base - 1 + i) % (t->nseg - 1);

		if (seg_free(t, s))
			pick = s;
	}
	if (pick) {
		t->chead = pick;
		atomic_fetch_add_explicit(&t->allocs, 1, memory_order_relaxed);
		/* before the cleaner writes into it (see "Reuse
		 * generation"); release pairs with br_seg_gen */
		atomic_fetch_add_explicit(&t->v[pick].gen, 1,
					  memory_order_release);
		if (atomic_load_explicit(&t->v[pick].newest,
					 memory_order_relaxed))
			atomic_fetch_add_explicit(&t->reused, 1,
						  memory_order_relaxed);
		atomic_store_explicit(&t->v[pick].newest, 0,
				      memory_order_relaxed);
		atomic_store_explicit(&t->v[pick].wrote, 0,
				      memory_order_relaxed);
		t->v[pick].discarded = false;
	}
	seg_recount(t);
	pthread_mutex_unlock(&t->lock);
	*seg = pick;
	return pick ? 0 : -ENOSPC;
}

void br_seg_drop_head(struct br_segtab *t)
{
	pthread_mutex_lock(&t->lock);
	t->chead = 0;
	seg_recount(t);
	pthread_mutex_unlock(&t->lock);
}

void br_seg_age(struct br_segtab *t, uint64_t s, uint64_t age, uint64_t now)
{
	if (s >= t->nseg)
		return;
	pthread_mutex_lock(&t->lock);
	if (atomic_load_explicit(&t->v[s].newest, memory_order_relaxed) < age)
		atomic_store_explicit(&t->v[s].newest, age,
				      memory_order_relaxed);
	atomic_store_explicit(&t->v[s].wrote, now, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
}

void br_seg_ckpt_durable(struct br_segtab *t, uint64_t roll_seq)
{
	pthread_mutex_lock(&t->lock);
	if (roll_seq > t->ckpt_seq)
		t->ckpt_seq = roll_seq;
	seg_recount(t);
	pthread_mutex_unlock(&t->lock);
}

void br_seg_space(struct br_segtab *t, struct br_seg_space *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->log_segs = t->nseg - 1;
	pthread_mutex_lock(&t->lock);
	for (uint64_t s = 1; s < t->nseg; s++) {
		uint64_t live = atomic_load_explicit(&t->v[s].live,
						     memory_order_relaxed);

		sp->live_bytes += live;
		if (s == t->cur || s == t->next || s == t->chead)
			sp->open_segs++;
		else if (seg_free(t, s) || t->v[s].busy)
			sp->free_segs++;
		else if (live == 0) {
			sp->dead_segs++;
			if (atomic_load_explicit(&t->v[s].newest,
						 memory_order_relaxed) >=
			    t->ckpt_seq)
				sp->ckpt_segs++;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

uint64_t br_seg_user_avail(struct br_segtab *t, uint64_t log_next,
			   uint64_t reserve, bool cleanable)
{
	uint64_t pool = 0, avail = 0, cur_end, dead = 0;
	uint64_t vmax = BR_SEG_VICTIM_MAX(t->seg_size);

	pthread_mutex_lock(&t->lock);
	for (uint64_t s = 1; s < t->nseg; s++) {
		uint64_t live = atomic_load_explicit(&t->v[s].live,
						     memory_order_relaxed);

		if (s == t->cur || s == t->next || s == t->chead)
			continue;
		if (seg_free(t, s) || t->v[s].busy || live == 0)
			pool++;		/* free, or dead: see br_seg_space */
		else if (cleanable && live <= vmax)
			dead += t->seg_size - live;
	}
	cur_end = (t->cur + 1) * t->seg_size;
	if (pool > reserve) {
		avail = (pool - reserve) * t->seg_size;
		if (t->next)
			avail += t->seg_size;
		if (log_next < cur_end)
			avail += cur_end - log_next;
	}
	pthread_mutex_unlock(&t->lock);
	/* the cleaner reaches scattered dead space only with room to move
	 * into, which users never get (the reserve) */
	if (dead > t->seg_size && pool >= reserve)
		avail += dead - t->seg_size;
	return avail;
}

size_t br_seg_candidates(struct br_segtab *t, struct br_seg_cand *out,
			 size_t max, uint64_t *now)
{
	size_t n = 0;

	*now = 0;
	pthread_mutex_lock(&t->lock);
	for (uint64_t s = 1; s < t->nseg; s++) {
		const struct br_seg *g = &t->v[s];
		uint64_t live = atomic_load_explicit(&g->live,
						     memory_order_relaxed);
		uint64_t newest = atomic_load_explicit(&g->newest,
						       memory_order_relaxed);

		if (newest > *now)
			*now = newest;
		if (s == t->cur || s == t->next || s == t->chead ||
		    g->busy || live == 0 ||
		    n == max)
			continue;
		out[n].seg = s;
		out[n].live = live;
		out[n].newest = newest;
		out[n].wrote = atomic_load_explicit(&g->wrote,
						    memory_order_relaxed);
		if (!out[n].wrote)
			out[n].wrote = newest;
		out[n].gen = atomic_load_explicit(&g->gen,
						  memory_order_relaxed);
		n++;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

uint64_t br_seg_gen(struct br_segtab *t, uint64_t s)
{
	if (s >= t->nseg)
		return 0;
	return atomic_load_explicit(&t->v[s].gen, memory_order_acquire);
}

void br_seg_usage(struct br_segtab *t, uint64_t *usage)
{
	for (uint64_t i = 0; i < t->nseg; i++)
		usage[i] = atomic_load_explicit(&t->v[i].live,
						memory_order_relaxed);
}

void br_seg_ages(struct br_segtab *t, uint64_t *age)
{
	for (uint64_t i = 0; i < t->nseg; i++)
		age[i] = atomic_load_explicit(&t->v[i].newest,
					      memory_order_relaxed);
}

static int seg_discard_one(struct br_segtab *t, uint64_t s)
{
	uint64_t range[2] = { s * t->seg_size, t->seg_size };

	if (t->blkdev)
		return ioctl(t->fd, BLKDISCARD, range) ? -errno : 0;
	return fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)range[0], (off_t)range[1]) ? -errno : 0;
}

int br_seg_discard(struct br_segtab *t)
{
	int n = 0, err = 0;

	if (!t->discard)
		return 0;
	seg_reader_barrier(t);
	for (uint64_t s = 1; s < t->nseg && !err; s++) {
		bool go;

		pthread_mutex_lock(&t->lock);
		go = t->discard && !t->v[s].discarded && seg_free(t, s);
		if (go)
			t->v[s].busy = true;	/* the allocator skips it */
		pthread_mutex_unlock(&t->lock);
		if (!go)
			continue;
		err = seg_discard_one(t, s);
		pthread_mutex_lock(&t->lock);
		t->v[s].busy = false;
		if (!err) {
			t->v[s].discarded = true;
			n++;
		} else if (err == -EOPNOTSUPP) {
			t->discard = false;
		}
		pthread_mutex_unlock(&t->lock);
	}
	atomic_fetch_add_explicit(&t->discards, (uint64_t)n,
				  memory_order_relaxed);
	return err ? err : n;
}
