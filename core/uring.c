/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io_uring dispatch (see uring.h).
 *
 * One io_uring instance.  Submitters share it under `lock` (held for
 * get_sqe + prep + submit only, one syscall per buffer handed over); one
 * completion thread owns the CQ side, reaps CQEs in batches and calls each
 * op's done() outside the lock.
 */
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct br_uring {
	struct io_uring ring;
	struct br_uring_config cfg;
	pthread_t reaper;
	/* Lock order: `lock` is a leaf: nothing else is taken under it and
	 * done() callbacks run without it. */
	pthread_mutex_t lock;
	pthread_cond_t idle;		/* inflight dropped to 0 */
	unsigned inflight;		/* ops handed over, done() not yet run */
	/* serial mode, under `lock` */
	struct br_uring_op *queue;	/* waiting ops sorted by order */
	uint64_t next_order;		/* order that must be written next */
	unsigned chain;			/* ops of the submitted chain in flight */
	struct br_uring_stats st;	/* under `lock` */
};

/* Queue one SQE for the unwritten rest of op.  Caller holds u->lock. */
static void uring_prep(struct br_uring *u, struct br_uring_op *op,
		       unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* The SQ is sized for every buffer twice over; flushing it
		 * to the kernel makes room if a retry storm filled it. */
		io_uring_submit(&u->ring);
		u->st.submits++;
		sqe = io_uring_get_sqe(&u->ring);
		if (!sqe) {
			fprintf(stderr, "bringfs: error: io_uring SQ full\n");
			abort();
		}
	}
	if (op->fixed >= 0 && u->st.fixed)
		io_uring_prep_write_fixed(sqe, u->cfg.fd, op->buf + op->_done_bytes,
					  op->len - op->_done_bytes,
					  op->off + op->_done_bytes, op->fixed);
	else
		io_uring_prep_write(sqe, u->cfg.fd, op->buf + op->_done_bytes,
				    op->len - op->_done_bytes,
				    op->off + op->_done_bytes);
	io_uring_sqe_set_data(sqe, op);
	sqe->flags |= flags;
}

static void uring_submit(struct br_uring *u)
{
	int ret;

	do
		ret = io_uring_submit(&u->ring);
	while (ret == -EINTR || ret == -EAGAIN);
	u->st.submits++;
}

/* Serial mode: submit the longest run of queued ops whose orders follow
 * next_order, as one IOSQE_IO_LINK chain, if no chain is in flight. */
static void serial_kick(struct br_uring *u)
{
	struct br_uring_op *first = u->queue, *op;
	unsigned n = 0;

	if (u->chain || !first || first->order != u->next_order)
		return;
	for (op = first; op && op->order == u->next_order + n; op = op->_next)
		n++;
	u->queue = op;
	for (unsigned i = 0; i < n; i++) {
		op = first;
		first = first->_next;
		uring_prep(u, op, i + 1 < n ? IOSQE_IO_LINK : 0);
	}
	u->next_order += n;
	u->chain = n;
	uring_submit(u);
}

static void serial_enqueue(struct br_uring *u, struct br_uring_op *op)
{
	struct br_uring_op **pp = &u->queue;

	while (*pp && (*pp)->order < op->order)
		pp = &(*pp)->_next;
	op->_next = *pp;
	*pp = op;
}

void br_uring_write(struct br_uring *u, struct br_uring_op *op)
{
	op->_done_bytes = 0;
	op->_tries = 0;
	op->_next = NULL;
	pthread_mutex_lock(&u->lock);
	u->inflight++;
	if (u->cfg.mode == BR_WRITE_SERIAL) {
		serial_enqueue(u, op);
		serial_kick(u);
	} else {
		uring_prep(u, op, 0);
		uring_submit(u);
	}
	pthread_mutex_unlock(&u->lock);
}

/* Put op back on the path to the disk.  Caller holds u->lock. */
static void uring_retry(struct br_uring *u, struct br_uring_op *op)
{
	u->st.retries++;
	if (u->cfg.mode == BR_WRITE_SERIAL) {
		/* The rest of its chain comes back cancelled: requeue them in
		 * order and restart the chain from the first unwritten op. */
		serial_enqueue(u, op);
		if (op->order < u->next_order)
			u->next_order = op->order;
	} else {
		uring_prep(u, op, 0);
		uring_submit(u);
	}
}

/*
 * Act on one CQE.  Returns the op to report as finished (with *err set), or
 * NULL if the op went back for a retry.  Caller holds u->lock.
 */
static struct br_uring_op *uring_reap_one(struct br_uring *u,
					  struct br_uring_op *op, int res,
					  int *err)
{
	bool serial = u->cfg.mode == BR_WRITE_SERIAL;

	if (serial)
		u->chain--;
	if (u->cfg.fault)
		res = u->cfg.fault(u->cfg.fault_ctx, op->off + op->_done_bytes,
				   op->len - op->_done_bytes, res);
	if (res > 0) {
		op->_done_bytes += (uint32_t)res;
		if (op->_done_bytes >= op->len) {
			*err = 0;
			u->st.writes++;
			return op;
		}
		/* Short write: continue where it stopped (not a failure, but
		 * a write that makes no progress counts as one below). */
		uring_retry(u, op);
		return NULL;
	}
	if (res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
		uring_retry(u, op);
		return NULL;
	}
	if (res == 0)
		res = -EIO;	/* no progress: the device is full or gone */
	if (++op->_tries <= u->cfg.max_retries) {
		uring_retry(u, op);
		return NULL;
	}
	u->st.failures++;
	if (serial && op->order + 1 > u->next_order)
		u->next_order = op->order + 1;	/* let the queue move on */
	*err = res;
	return op;
}

static void *uring_reaper(void *arg)
{
	struct br_uring *u = arg;
	bool stop = false;

	while (!stop) {
		struct br_uring_op *done[64];
		int errs[64];
		struct io_uring_cqe *cqe;
		unsigned head, n = 0, nd = 0;
		int ret = io_uring_wait_cqe(&u->ring, &cqe);

		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0) {
			fprintf(stderr, "bringfs: error: io_uring_wait_cqe: %s\n",
				strerror(-ret));
			abort();
		}
		pthread_mutex_lock(&u->lock);
		io_uring_for_each_cqe(&u->ring, head, cqe) {
			struct br_uring_op *op = io_uring_cqe_get_data(cqe);
			int err;

			if (nd == 64)
				break;
			n++;
			u->st.cqes++;
			if (!op) {
				stop = true;	/* the NOP from br_uring_close */
				continue;
			}
			op = uring_reap_one(u, op, cqe->res, &err);
			if (op) {
				done[nd] = op;
				errs[nd++] = err;
			}
		}
		io_uring_cq_advance(&u->ring, n);
		if (u->cfg.mode == BR_WRITE_SERIAL)
			serial_kick(u);
		pthread_mutex_unlock(&u->lock);

		for (unsigned i = 0; i < nd; i++)
			done[i]->done(done[i], errs[i]);

		if (nd) {
			pthread_mutex_lock(&u->lock);
			u->inflight -= nd;
			if (!u->inflight)
				pthread_cond_broadcast(&u->idle);
			pthread_mutex_unlock(&u->lock);
		}
	}
	return NULL;
}

int br_uring_open(const struct br_uring_config *cfg, struct br_uring **out)
{
	struct br_uring *u = calloc(1, sizeof(*u));
	int err;

	if (!u)
		return -ENOMEM;
	u->cfg = *cfg;
	if (u->cfg.depth < 128)
		u->cfg.depth = 128;	/* 2 x the largest ring: retries fit */
	if (!u->cfg.max_retries)
		u->cfg.max_retries = 4;
	u->next_order = cfg->first_order;
	err = io_uring_queue_init(u->cfg.depth, &u->ring, 0);
	if (err < 0) {
		free(u);
		return err;
	}
	if (cfg->nfixed &&
	    io_uring_register_buffers(&u->ring, cfg->fixed, cfg->nfixed) == 0)
		u->st.fixed = 1;
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->idle, NULL);
	err = -pthread_create(&u->reaper, NULL, uring_reaper, u);
	if (err) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return err;
	}
	*out = u;
	return 0;
}

void br_uring_close(struct br_uring *u)
{
	struct io_uring_sqe *sqe;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	while (u->inflight)
		pthread_cond_wait(&u->idle, &u->lock);
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, NULL);
	uring_submit(u);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->reaper, NULL);
	io_uring_queue_exit(&u->ring);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->idle);
	free(u);
}

void br_uring_stats(struct br_uring *u, struct br_uring_stats *st)
{
	pthread_mutex_lock(&u->lock);
	*st = u->st;
	pthread_mutex_unlock(&u->lock);
}
