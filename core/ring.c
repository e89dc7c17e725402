/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The latch-free buffer ring; the protocol is described in ring.h.
 *
 * Invariants (checked by tests/test_ring.c):
 *  - at most one buffer is open (unsealed and not IDLE) at any time: the one
 *    `cur` names, once its opener has published it;
 *  - generations open in strict order: slot (i + 1) % N opens with
 *    generation g + 1 after slot i (generation g) was sealed and placed;
 *  - cfg.place runs once per generation, in generation order, so log
 *    addresses grow with generation;
 *  - cfg.dispatch runs once per generation, after the last writer left;
 *  - a buffer is recycled only by br_ring_complete(), i.e. after its CQE.
 */
#include "ring.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ST_SEALED	(1ull << 0)
#define ST_FLUSHING	(1ull << 1)
#define ST_FLUSH_REQ	(1ull << 2)
#define ST_IDLE		(1ull << 3)
#define ST_WRITER_SHIFT	8
#define ST_WRITER_ONE	(1ull << ST_WRITER_SHIFT)
#define ST_WRITER_MASK	(0xffffffull << ST_WRITER_SHIFT)
#define ST_OFF_SHIFT	32

/* A recycled buffer waiting to be opened: sealed (so nobody reserves) and
 * idle.  Stale writers may briefly add to its offset and writer count. */
#define ST_FREE		(ST_SEALED | ST_IDLE)

static inline uint32_t st_off(uint64_t s) { return (uint32_t)(s >> ST_OFF_SHIFT); }
static inline uint32_t st_writers(uint64_t s)
{
	return (uint32_t)((s & ST_WRITER_MASK) >> ST_WRITER_SHIFT);
}

/* cur = generation << 8 | slot */
#define CUR_SLOT_BITS 8
static inline unsigned cur_slot(uint64_t c) { return (unsigned)(c & 0xff); }
static inline uint64_t cur_seq(uint64_t c) { return c >> CUR_SLOT_BITS; }
static inline uint64_t cur_make(uint64_t seq, unsigned slot)
{
	return seq << CUR_SLOT_BITS | slot;
}

struct br_ring {
	_Atomic uint64_t cur;		/* generation << 8 | slot of the open buffer */
	_Atomic int err;		/* latched error, 0 if none */
	_Atomic uint32_t wake;		/* futex word: bumped on recycle/rotate */
	_Atomic uint32_t sleepers;	/* threads in futex_wait on `wake` */
	struct br_ring_config cfg;
	_Atomic uint32_t next_cap;	/* cap of the generation after the
					 * last one placed (written by its
					 * seal owner before its `placed`
					 * store, or from 0 by ring_unblock;
					 * read by the rotator after loading
					 * `placed`); 0: blocked */
	pthread_mutex_t unblock_lock;	/* one cfg.unblock at a time */
	uint8_t *mem;			/* nbuf * buf_size, one allocation */
	struct br_ring_buf bufs[];
};

static void futex_wake_all(struct br_ring *r)
{
	/* seq_cst: a sleeper that sees the new value also sees the recycle or
	 * rotation that preceded it, and the Dekker pair with ring_sleep()
	 * (bump `wake`, then read `sleepers`) needs a single total order */
	atomic_fetch_add_explicit(&r->wake, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&r->sleepers, memory_order_seq_cst))
		syscall(SYS_futex, &r->wake, FUTEX_WAKE_PRIVATE, INT_MAX,
			NULL, NULL, 0);
}

/* Sleep until `wake` moves away from `seen` (or 10 ms pass: a bound, not a
 * poll interval; every state change that can unblock us calls
 * futex_wake_all). */
static void ring_sleep(struct br_ring *r, uint32_t seen)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	/* seq_cst on both sides: either the waker sees our sleeper count or
	 * we see its increment of `wake` (Dekker pattern) */
	atomic_fetch_add_explicit(&r->sleepers, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&r->wake, memory_order_seq_cst) == seen)
		syscall(SYS_futex, &r->wake, FUTEX_WAIT_PRIVATE, seen, &ts,
			NULL, 0);
	atomic_fetch_sub_explicit(&r->sleepers, 1, memory_order_relaxed);
}

int br_ring_create(const struct br_ring_config *cfg, struct br_ring **out)
{
	struct br_ring_config c = *cfg;
	struct br_ring *r;
	size_t total;

	if (!c.nbuf)
		c.nbuf = 4;
	if (!c.buf_size)
		c.buf_size = 1u << 20;
	if (!c.first_seq)
		c.first_seq = 1;
	if (c.nbuf < 2 || c.nbuf > BR_RING_MAX_BUFS || c.buf_size % 4096 ||
	    c.buf_size < BR_RING_MIN_BUF || c.buf_size > BR_RING_MAX_BUF ||
	    c.hdr_size >= c.buf_size / 2 || !c.place || !c.dispatch ||
	    c.first_seq >= (1ull << 55))
		return -EINVAL;

	r = calloc(1, sizeof(*r) + c.nbuf * sizeof(r->bufs[0]));
	if (!r)
		return -ENOMEM;
	total = (size_t)c.nbuf * c.buf_size;
	if (posix_memalign((void **)&r->mem, 4096, total)) {
		free(r);
		return -ENOMEM;
	}
	/* Touch every page now: no page fault on the reserve/copy path. */
	memset(r->mem, 0, total);
	r->cfg = c;
	for (unsigned i = 0; i < c.nbuf; i++) {
		struct br_ring_buf *b = &r->bufs[i];

		b->idx = i;
		b->data = r->mem + (size_t)i * c.buf_size;
		atomic_init(&b->state, ST_FREE);
		atomic_init(&b->seq, 0);
		atomic_init(&b->placed, 0);
		atomic_init(&b->cap, c.buf_size);
	}
	atomic_init(&r->next_cap, c.buf_size);
	pthread_mutex_init(&r->unblock_lock, NULL);
	/* Slot 0 opens with the first generation. */
	atomic_init(&r->bufs[0].seq, c.first_seq);
	if (c.first_cap >= 4096 && c.first_cap < c.buf_size)
		atomic_init(&r->bufs[0].cap, c.first_cap);
	atomic_init(&r->bufs[0].state, (uint64_t)c.hdr_size << ST_OFF_SHIFT);
	atomic_init(&r->cur, cur_make(c.first_seq, 0));
	*out = r;
	return 0;
}

void br_ring_destroy(struct br_ring *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->unblock_lock);
	free(r->mem);
	free(r);
}

uint32_t br_ring_max_record(const struct br_ring *r)
{
	return r->cfg.buf_size - r->cfg.hdr_size;
}

unsigned br_ring_nbuf(const struct br_ring *r) { return r->cfg.nbuf; }

uint32_t br_ring_buf_size(const struct br_ring *r) { return r->cfg.buf_size; }

struct br_ring_buf *br_ring_buf(struct br_ring *r, unsigned idx)
{
	return idx < r->cfg.nbuf ? &r->bufs[idx] : NULL;
}

uint64_t br_ring_cur_seq(struct br_ring *r)
{
	return cur_seq(atomic_load_explicit(&r->cur, memory_order_acquire));
}

uint32_t br_ring_room(struct br_ring *r)
{
	uint64_t c = atomic_load_explicit(&r->cur, memory_order_relaxed);
	struct br_ring_buf *b = &r->bufs[cur_slot(c)];
	/* relaxed: a hint only (ring.h); no data is read through it */
	uint64_t st = atomic_load_explicit(&b->state, memory_order_relaxed);
	uint32_t off = st_off(st);
	uint32_t cap = atomic_load_explicit(&b->cap, memory_order_relaxed);

	if (st & ST_FREE)
		return br_ring_max_record(r);
	return off >= cap ? 0 : cap - off;
}

void br_ring_set_next_cap(struct br_ring *r, uint32_t cap)
{
	atomic_store_explicit(&r->next_cap,
			      cap < r->cfg.buf_size ? cap : r->cfg.buf_size,
			      memory_order_relaxed);
}

int br_ring_error(struct br_ring *r)
{
	return atomic_load_explicit(&r->err, memory_order_acquire);
}

void br_ring_fail(struct br_ring *r, int err)
{
	int zero = 0;

	/* release: pairs with the acquire in br_ring_error(); the first error
	 * wins, later ones are consequences of it */
	atomic_compare_exchange_strong_explicit(&r->err, &zero, err,
						memory_order_release,
						memory_order_relaxed);
	futex_wake_all(r);
}

/* Win FLUSHING on a sealed buffer with no writers and hand it over. */
static void ring_try_dispatch(struct br_ring *r, struct br_ring_buf *b)
{
	/* acquire: everything the writers and the seal owner wrote into the
	 * buffer (records, addr, used) happens-before the dispatch; pairs with
	 * their release fetch_sub in ring_drop_writer() */
	uint64_t s = atomic_load_explicit(&b->state, memory_order_acquire);

	for (;;) {
		if (!(s & ST_SEALED) || (s & (ST_FLUSHING | ST_IDLE)) ||
		    st_writers(s) != 0)
			return;
		if (r->cfg.manual_flush && !(s & ST_FLUSH_REQ))
			return;
		if (atomic_load_explicit(&b->placed, memory_order_acquire) !=
		    atomic_load_explicit(&b->seq, memory_order_relaxed))
			return;	/* the seal owner still holds it: it will retry */
		if (atomic_compare_exchange_weak_explicit(
			    &b->state, &s, s | ST_FLUSHING,
			    memory_order_acq_rel, memory_order_acquire))
			break;
	}
	if (br_ring_error(r))
		return;	/* a failed ring writes nothing more */
	r->cfg.dispatch(r->cfg.ctx, b);
}

/* Drop one writer count; the last one out of a sealed buffer dispatches. */
static void ring_drop_writer(struct br_ring *r, struct br_ring_buf *b)
{
	/* acq_rel: our copy into the buffer must be visible to whichever
	 * thread dispatches it; pairs with the acquire in ring_try_dispatch() */
	uint64_t prev = atomic_fetch_sub_explicit(&b->state, ST_WRITER_ONE,
						  memory_order_acq_rel);

	if (st_writers(prev) == 1 && (prev & ST_SEALED) && !(prev & ST_IDLE))
		ring_try_dispatch(r, b);
}

/*
 * Open the next slot after the sealed-and-placed current buffer.  One CAS
 * on `cur` decides who does it.  Returns 0 if `cur` moved (by us or
 * someone else), -EAGAIN if the current buffer is not ready to leave or the
 * next slot is still in flight.
 */
static int ring_rotate_from(struct br_ring *r, uint64_t c)
{
	unsigned slot = cur_slot(c), next = (slot + 1) % r->cfg.nbuf;
	uint64_t seq = cur_seq(c);
	struct br_ring_buf *b = &r->bufs[slot], *nb = &r->bufs[next];
	uint32_t cap;
	uint64_t s;

	/* seq_cst (here, on `placed` in ring_finish_seal() and on the recycle
	 * CAS in br_ring_complete()): the seal owner stores `placed` then
	 * loads the next slot's state, the completer stores the state then
	 * loads `placed`; with seq_cst at least one of them sees the other's
	 * store and rotates, so the ring never stalls on that race. */
	if (atomic_load_explicit(&b->placed, memory_order_seq_cst) != seq)
		return -EAGAIN;	/* not sealed and placed yet */
	/* acquire: pairs with ring_unblock's release (a store placed
	 * earlier than `placed` is visible through the seq_cst load) */
	cap = atomic_load_explicit(&r->next_cap, memory_order_acquire);
	if (!cap)
		return -ENOSPC;	/* no room for a successor yet */
	s = atomic_load_explicit(&nb->state, memory_order_seq_cst);
	/* FLUSH_REQ may be stray on an idle buffer (a late manual flush); the
	 * open below clears it. */
	if ((s & (ST_FREE | ST_FLUSHING)) != ST_FREE)
		return -EAGAIN;	/* next slot still in flight: exhausted */
	if (!atomic_compare_exchange_strong_explicit(
		    &r->cur, &c, cur_make(seq + 1, next),
		    memory_order_acq_rel, memory_order_acquire))
		return 0;	/* somebody else rotated */

	/* We own the opening of `nb`.  Its generation and capacity must be
	 * visible before any writer can reserve in it: the open CAS below is
	 * a release. */
	atomic_store_explicit(&nb->seq, seq + 1, memory_order_relaxed);
	atomic_store_explicit(&nb->cap, cap, memory_order_relaxed);
	s = atomic_load_explicit(&nb->state, memory_order_relaxed);
	for (;;) {
		/* A stale writer may hold a transient count on the free buffer
		 * (it saw SEALED and is backing out): wait for it to leave so
		 * its decrement never lands on the opened state. */
		if (st_writers(s)) {
			sched_yield();
			s = atomic_load_explicit(&nb->state, memory_order_relaxed);
			continue;
		}
		/* release: publishes nb->seq; pairs with the acq_rel fetch_add
		 * in br_ring_reserve() */
		if (atomic_compare_exchange_weak_explicit(
			    &nb->state, &s,
			    (uint64_t)r->cfg.hdr_size << ST_OFF_SHIFT,
			    memory_order_release, memory_order_relaxed))
			break;
	}
	futex_wake_all(r);
	return 0;
}

int br_ring_rotate(struct br_ring *r)
{
	uint64_t c = atomic_load_explicit(&r->cur, memory_order_acquire);
	uint64_t before = c;
	int err = ring_rotate_from(r, c);

	if (err)
		return err;
	return atomic_load_explicit(&r->cur, memory_order_acquire) != before ?
		0 : -EAGAIN;
}

/*
 * We own the seal of `b` and hold a writer count on it.  `used` is where its
 * data ends.  Place it, publish `placed`, rotate, drop our count.
 */
static void ring_finish_seal(struct br_ring *r, struct br_ring_buf *b,
			     uint64_t seq, uint32_t used)
{
	uint64_t addr = 0;
	int err;

	b->used = used;
	b->span = (used + 4095u) & ~4095u;
	atomic_store_explicit(&r->next_cap, r->cfg.buf_size,
			      memory_order_relaxed);	/* unless place says
							 * otherwise */
	err = r->cfg.place(r->cfg.ctx, b, &addr);
	if (err < 0) {
		br_ring_fail(r, err);
	} else {
		b->addr = addr;
	}
	/* seq_cst (a release at least): addr/used/span are visible to whoever
	 * reads `placed` (rotation, dispatch); see ring_rotate_from() for why
	 * it is seq_cst */
	atomic_store_explicit(&b->placed, seq, memory_order_seq_cst);
	if (!r->cfg.manual_rotate)
		ring_rotate_from(r, cur_make(seq, b->idx));
	ring_drop_writer(r, b);
}

/*
 * Rotation from generation c is blocked (its seal owner set next_cap 0):
 * ask the layer below for room, one asker at a time.  0 if rotation may
 * go on, -ENOSPC if there is still no room (not latched).
 */
static int ring_unblock(struct br_ring *r, uint64_t c)
{
	struct br_ring_buf *b = &r->bufs[cur_slot(c)];
	int err = 0;

	if (!r->cfg.unblock)
		return -ENOSPC;
	pthread_mutex_lock(&r->unblock_lock);
	/* Still the sealed, placed generation whose successor is blocked?
	 * (Its placement is over and the next one cannot start before the
	 * rotation we are after, so cfg.unblock runs alone.) */
	if (atomic_load_explicit(&r->cur, memory_order_acquire) == c &&
	    atomic_load_explicit(&b->placed, memory_order_seq_cst) ==
	    cur_seq(c) &&
	    !atomic_load_explicit(&r->next_cap, memory_order_acquire)) {
		uint32_t cap = r->cfg.unblock(r->cfg.ctx);

		if (cap > r->cfg.buf_size)
			cap = r->cfg.buf_size;
		/* release: what unblock set up (the store's next segment)
		 * is visible to the rotator that reads the cap; pairs with
		 * the acquire in ring_rotate_from() */
		atomic_store_explicit(&r->next_cap, cap, memory_order_release);
		err = cap ? 0 : -ENOSPC;
	}
	pthread_mutex_unlock(&r->unblock_lock);
	return err;
}

int br_ring_reserve(struct br_ring *r, uint32_t len, struct br_ring_resv *rv)
{
	uint32_t cap = r->cfg.buf_size;
	const uint64_t add = (uint64_t)len << ST_OFF_SHIFT | ST_WRITER_ONE;
	unsigned spins = 0;

	if (len == 0 || len > cap - r->cfg.hdr_size)
		return len ? -E2BIG : -EINVAL;

	for (;;) {
		uint64_t c, s, prev;
		struct br_ring_buf *b;
		uint32_t off;
		int err;

		err = atomic_load_explicit(&r->err, memory_order_relaxed);
		if (err)
			return err;
		c = atomic_load_explicit(&r->cur, memory_order_acquire);
		b = &r->bufs[cur_slot(c)];
		s = atomic_load_explicit(&b->state, memory_order_relaxed);
		if (s & ST_SEALED) {
			/* Current is sealed: help it rotate, or wait for a
			 * completion to free the next slot. */
			uint32_t w = atomic_load_explicit(&r->wake,
							  memory_order_acquire);

			if (r->cfg.manual_rotate &&
			    atomic_load_explicit(&b->placed,
						 memory_order_acquire) ==
			    cur_seq(c))
				return -EAGAIN;
			err = ring_rotate_from(r, c);
			if (err == -ENOSPC)
				err = ring_unblock(r, c);
			if (err == -ENOSPC)
				return err;
			if (err == 0)
				continue;
			if (++spins < 64) {
				sched_yield();
				continue;
			}
			ring_sleep(r, w);
			continue;
		}

		/* The one atomic of the fast path.  acq_rel: acquire pairs with
		 * the release that opened the buffer (we read b->seq after);
		 * release orders nothing yet but keeps the RMW chain a release
		 * sequence for the dispatcher. */
		prev = atomic_fetch_add_explicit(&b->state, add,
						 memory_order_acq_rel);
		if (prev & ST_SEALED) {
			ring_drop_writer(r, b);
			continue;
		}
		off = st_off(prev);
		/* the generation we reserved in may be newer than the one
		 * whose cap we read: read it again (the acq_rel fetch-add
		 * pairs with the release that opened it) */
		cap = atomic_load_explicit(&b->cap, memory_order_relaxed);
		if ((uint64_t)off + len <= cap) {
			rv->buf = b;
			rv->off = off;
			rv->ptr = b->data + off;
			rv->seq = atomic_load_explicit(&b->seq,
						       memory_order_relaxed);
			return 0;
		}
		if (off <= cap) {
			/* We crossed the end: the buffer's data ends at `off`.
			 * We own the seal: nobody else can seal a buffer whose
			 * offset ran past the end (br_ring_seal uses a CAS
			 * that requires offset <= cap). */
			uint64_t seq = atomic_load_explicit(&b->seq,
							    memory_order_relaxed);

			atomic_fetch_or_explicit(&b->state, ST_SEALED,
						 memory_order_acq_rel);
			ring_finish_seal(r, b, seq, off);
			continue;
		}
		/* Someone else crossed before us and will seal. */
		ring_drop_writer(r, b);
	}
}

void br_ring_commit(struct br_ring *r, const struct br_ring_resv *rv)
{
	ring_drop_writer(r, rv->buf);
}

/* Seal the open buffer of generation `seq` if it has data; `req` adds
 * FLUSH_REQ (manual flush).  See ring.h. */
static bool ring_seal(struct br_ring *r, uint64_t seq, uint64_t req)
{
	uint64_t c = atomic_load_explicit(&r->cur, memory_order_acquire);
	struct br_ring_buf *b;
	uint64_t s;

	if (cur_seq(c) > seq) {
		/* Already sealed.  Under manual flush, still ask for it. */
		if (req) {
			for (unsigned i = 0; i < r->cfg.nbuf; i++) {
				b = &r->bufs[i];
				if (atomic_load_explicit(&b->seq,
							 memory_order_acquire) != seq)
					continue;
				s = atomic_fetch_or_explicit(&b->state, req,
							     memory_order_acq_rel);
				if (!(s & ST_IDLE))
					ring_try_dispatch(r, b);
			}
		}
		return true;
	}
	if (cur_seq(c) < seq)
		return false;	/* that generation has not opened */
	b = &r->bufs[cur_slot(c)];
	s = atomic_load_explicit(&b->state, memory_order_acquire);
	for (;;) {
		if (s & (ST_SEALED | ST_IDLE)) {
			/* Sealed already (or not opened yet: the opener is
			 * between its two CASes, and then it is empty). */
			if (s & ST_IDLE)
				return false;
			if (req) {
				atomic_fetch_or_explicit(&b->state, req,
							 memory_order_acq_rel);
				ring_try_dispatch(r, b);
			}
			return true;
		}
		if (st_off(s) == r->cfg.hdr_size)
			return false;	/* nothing in it */
		if (st_off(s) > atomic_load_explicit(&b->cap,
						     memory_order_relaxed))
			return true;	/* a crosser owns the seal */
		/* Seal and take a writer count in one CAS, only while nobody
		 * has crossed.  acq_rel: acquire the writers' reservations,
		 * release our count for the dispatcher. */
		if (atomic_compare_exchange_weak_explicit(
			    &b->state, &s, (s | ST_SEALED | req) + ST_WRITER_ONE,
			    memory_order_acq_rel, memory_order_acquire))
			break;
	}
	/* The slot may have been recycled and reopened with a newer
	 * generation since we read `cur`: then `seq` is long sealed and we
	 * just sealed a newer buffer early, which is harmless.  Place what we
	 * sealed. */
	ring_finish_seal(r, b, atomic_load_explicit(&b->seq, memory_order_relaxed),
			 st_off(s));
	return true;
}

bool br_ring_seal(struct br_ring *r, uint64_t seq)
{
	return ring_seal(r, seq, 0);
}

void br_ring_flush_buf(struct br_ring *r, uint64_t seq)
{
	ring_seal(r, seq, ST_FLUSH_REQ);
}

void br_ring_complete(struct br_ring *r, struct br_ring_buf *b)
{
	uint64_t s = atomic_load_explicit(&b->state, memory_order_relaxed);

	/* Recycle: nobody may hold a real reservation (the last writer left
	 * before dispatch); stale writers that bumped the count after seeing
	 * SEALED leave at once.  release: the next opener and writers see the
	 * buffer as free only after everything the I/O path did with it. */
	for (;;) {
		if (st_writers(s)) {
			sched_yield();
			s = atomic_load_explicit(&b->state, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(
			    &b->state, &s, ST_FREE, memory_order_seq_cst,
			    memory_order_relaxed))
			break;
	}
	/* The current buffer may be sealed and waiting for this slot. */
	if (!r->cfg.manual_rotate)
		ring_rotate_from(r, atomic_load_explicit(&r->cur,
							 memory_order_acquire));
	futex_wake_all(r);
}

int br_ring_drain(struct br_ring *r, uint64_t seq)
{
	for (;;) {
		uint32_t w = atomic_load_explicit(&r->wake, memory_order_acquire);
		bool busy = false;
		int err = br_ring_error(r);

		if (err)
			return err;
		for (unsigned i = 0; i < r->cfg.nbuf; i++) {
			struct br_ring_buf *b = &r->bufs[i];
			uint64_t s = atomic_load_explicit(&b->state,
							  memory_order_acquire);
			uint64_t bseq = atomic_load_explicit(&b->seq,
							     memory_order_acquire);

			if ((s & ST_SEALED) && !(s & ST_IDLE) && bseq <= seq)
				busy = true;
		}
		if (!busy)
			return 0;
		ring_sleep(r, w);
	}
}
