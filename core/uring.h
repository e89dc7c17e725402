/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io_uring dispatch: writes whole buffers at given offsets of one O_DIRECT
 * file, reaps completions on one thread, retries, and reports each write's
 * final result once.
 *
 * Modes:
 *  - BR_WRITE_TAIL (default): every write is submitted as soon as it is
 *    handed over; writes run in parallel and may complete out of order
 *    (they never overlap: the ring gives each buffer its own range).
 *  - BR_WRITE_SERIAL: writes go to disk in `order` order, one after the
 *    other: writes handed over together are submitted as one IOSQE_IO_LINK
 *    chain, and the next chain only after the previous one completed.
 *
 * Retries: a short write is continued from where it stopped; -EINTR,
 * -EAGAIN and -ECANCELED (a broken link) are resubmitted; any other error
 * is retried up to max_retries times.  Then op->done(op, -EIO-ish err).
 *
 * Threading: br_uring_write() may be called from any thread (one mutex
 * around the SQ, held for get_sqe+prep+submit only).  done() runs on the
 * completion thread.
 */
#ifndef BR_URING_H
#define BR_URING_H

#include <stdint.h>
#include <sys/uio.h>

enum br_write_mode {
	BR_WRITE_TAIL = 0,	/* tail-localised, parallel */
	BR_WRITE_SERIAL = 1,	/* serialised, IOSQE_IO_LINK */
};

struct br_uring;
struct br_uring_op;

/* One write; owned by the caller, untouched by it until done() runs. */
struct br_uring_op {
	const uint8_t *buf;	/* 4096 aligned */
	uint32_t len;		/* multiple of 4096 */
	uint64_t off;		/* device byte offset, 4096 aligned */
	uint64_t order;		/* serial mode: submit in this order, no gaps */
	int fixed;		/* index into cfg.fixed holding buf, or -1 */
	void (*done)(struct br_uring_op *op, int err);
	/* private to uring.c */
	uint32_t _done_bytes;
	unsigned _tries;
	struct br_uring_op *_next;
};

struct br_uring_config {
	int fd;			/* O_DIRECT fd, owned by the caller */
	unsigned depth;		/* SQ entries, default 64 */
	enum br_write_mode mode;
	unsigned max_retries;	/* failed attempts before giving up, default 4 */
	uint64_t first_order;	/* serial mode: order of the first write */
	/* Buffers to register with the kernel (io_uring_register_buffers):
	 * writes from them skip pinning the pages on every I/O.  If the kernel
	 * refuses (memlock limits), plain writes are used. */
	const struct iovec *fixed;
	unsigned nfixed;
	/* Test hook (fault injection): called with each CQE's result before it
	 * is acted on; returns the result to use (an -errno to fail the write,
	 * a smaller count to make it short).  NULL in production. */
	int (*fault)(void *fault_ctx, uint64_t off, uint32_t len, int res);
	void *fault_ctx;
};

/* Set up the ring and start the completion thread.  -errno. */
int br_uring_open(const struct br_uring_config *cfg, struct br_uring **out);

/* Wait for every write handed over to finish, stop the thread, free. */
void br_uring_close(struct br_uring *u);

/* Hand over a write.  op->done will be called exactly once. */
void br_uring_write(struct br_uring *u, struct br_uring_op *op);

struct br_uring_stats {
	uint64_t writes;	/* ops completed successfully */
	uint64_t retries;	/* resubmissions */
	uint64_t failures;	/* ops given up on */
	uint64_t submits;	/* io_uring_submit calls */
	uint64_t cqes;		/* CQEs reaped */
	int fixed;		/* 1 if registered buffers are in use */
};
void br_uring_stats(struct br_uring *u, struct br_uring_stats *st);

#endif /* BR_URING_H */
