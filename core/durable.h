/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Durability: the durable prefix and group commit.
 *
 * Every buffer has a generation (seq).  Buffers complete out of order; the
 * completed prefix is the highest seq C such that every seq <= C has
 * completed.  The durable prefix D is the highest C for which a device flush
 * (fdatasync) was started after C completed and has finished.  D only grows.
 *
 * br_durable_wait(seq): if D < seq, wait until C >= seq; then either a flush
 * is running (wait for it: it may already cover us, otherwise we take part
 * in the next one) or we become the leader: snapshot C, flush, publish
 * D = C, wake everybody.  All waiters that arrive while one flush runs share
 * the next one: N concurrent waiters cost about two flushes, not N.
 *
 * A failed write or flush latches -EIO: waiters return it, D stops.
 */
#ifndef BR_DURABLE_H
#define BR_DURABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define BR_DURABLE_WINDOW 64	/* seqs that may be in flight at once */

struct br_durable {
	pthread_mutex_t lock;	/* protects everything below but `durable` */
	pthread_cond_t cond;	/* completions, flush ends, errors */
	uint64_t next;		/* lowest seq not yet completed */
	uint64_t done_mask;	/* bit (seq % WINDOW) for completed seq >= next */
	int flushing;		/* a leader is in fdatasync */
	int err;		/* latched error, 0 or -EIO */
	uint64_t flushes;	/* device flushes issued */
	uint64_t waits;		/* calls that had to wait */
	int fd;			/* what to flush */
	_Atomic uint64_t durable; /* D; written under lock, read without */
};

int br_durable_init(struct br_durable *d, int fd, uint64_t first_seq);
void br_durable_destroy(struct br_durable *d);

/* Buffer `seq` completed (err 0) or failed for good (err < 0). */
void br_durable_complete(struct br_durable *d, uint64_t seq, int err);

/* Wait until D >= seq.  0 or the latched error. */
int br_durable_wait(struct br_durable *d, uint64_t seq);

/* Latch an error and wake every waiter. */
void br_durable_fail(struct br_durable *d, int err);

static inline uint64_t br_durable_get(struct br_durable *d)
{
	/* acquire: pairs with the release store in the flush leader, so the
	 * caller sees everything the leader saw before publishing D */
	return atomic_load_explicit(&d->durable, memory_order_acquire);
}

#endif /* BR_DURABLE_H */
