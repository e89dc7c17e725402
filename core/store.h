/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The write pipeline: one backing file opened O_DIRECT, the buffer ring in
 * front of it, io_uring behind it, and group-commit durability on top.
 *
 *   br_store_reserve()  one atomic fetch-add in the ring, no lock, no syscall
 *   (caller copies its record into r->ptr, updates its own maps)
 *   br_store_commit()   drops the writer count; the last writer out of a
 *                       sealed buffer writes its header + CRC and submits it
 *   completion thread   reaps CQEs, retries short/failed writes, calls
 *                       cfg->on_complete, marks the buffer durable-pending,
 *                       recycles it
 *   br_store_sync(pos)  seals the buffer holding pos if still open, waits
 *                       until every buffer up to it has completed and one
 *                       device flush (fdatasync) issued after that has
 *                       finished; concurrent callers share flushes.
 *
 * Positions: every reservation gets a 64-bit position
 *   pos = seq << 32 | end offset inside its buffer
 * where seq is the ring generation of the buffer.  Positions grow strictly
 * with log order; br_store_sync(pos) covers every position <= pos.
 *
 * Errors latch: after a write fails for good (retries exhausted) or a device
 * flush fails, every later reserve and sync returns -EIO, and no position at
 * or after the failed buffer is ever reported durable.  Data that was already
 * reported durable is not touched.
 */
#ifndef BR_STORE_H
#define BR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "uring.h"

struct br_store;

/* What the completion thread reports for each buffer it is done with. */
struct br_store_done {
	uint64_t seq;		/* ring generation of the buffer */
	uint64_t addr;		/* log byte address of the buffer header */
	const uint8_t *data;	/* the buffer: header + records, `used` bytes */
	uint32_t used;		/* header + record bytes */
	unsigned idx;		/* ring slot, as in struct br_resv.idx */
	int err;		/* 0, or -errno: the write failed for good */
};

struct br_store_config {
	const char *path;	/* backing file or device (opened O_RDWR|O_DIRECT) */
	int fd;			/* or an open O_DIRECT fd (>= 0), not closed by us */
	unsigned nbuf;		/* ring buffers: 2..64, default 4 (0 = default) */
	uint32_t buf_size;	/* bytes per buffer: multiple of 4096,
				 * 64 KiB..64 MiB, default 1 MiB (0 = default) */
	enum br_write_mode mode; /* default BR_WRITE_TAIL */
	uint64_t log_start;	/* first log byte (block aligned) */
	uint64_t log_end;	/* one past the last usable log byte */
	uint64_t next_addr;	/* where the next buffer goes (>= log_start) */
	uint64_t seg_end;	/* end of the segment next_addr is in; next_addr
				 * may equal it (that segment is full).  0:
				 * next_addr is inside a segment or at its
				 * start, compute it */
	uint64_t seg_size;	/* bytes per segment; buffers never cross a
				 * segment boundary (0: the whole log is one) */
	uint64_t next_seg;	/* segment the log continues in after the one
				 * holding next_addr (0: the one after it, or
				 * none if that is past log_end) */
	/* Choose the segment to continue in after `seg` (called when the
	 * log enters `seg`); 0 and *next = 0 if none is free.  NULL: the
	 * adjacent segment, up to log_end. */
	int (*alloc_seg)(void *ctx, uint64_t seg, uint64_t *next);
	/* Called for every buffer when its log address is assigned (by the
	 * seal owner, before the write is submitted; one call at a time, in
	 * generation order).  NULL: nothing. */
	void (*placed)(void *ctx, uint64_t addr, uint64_t seq);
	void *alloc_ctx;	/* ctx of alloc_seg and placed (NULL: ctx) */
	uint64_t next_seq;	/* generation of the first buffer (>= 1) */
	uint64_t fsid;		/* stamped into every buffer header */
	uint32_t prev_nonce;	/* nonce of the last valid buffer in the log
				 * (0 after mkfs); see struct br_buf_header */
	/* Called on the completion thread for every finished buffer, before
	 * the buffer is reused; may take locks that writers take between
	 * reserve and commit (the buffer it reports has no writers left). */
	void (*on_complete)(void *ctx, const struct br_store_done *done);
	void *ctx;
	/* Test hook, see struct br_uring_config.fault. */
	int (*fault)(void *fault_ctx, uint64_t off, uint32_t len, int res);
	void *fault_ctx;
};

/* A reservation: `len` bytes at `ptr`, exclusively the caller's until commit. */
struct br_resv {
	uint8_t *ptr;		/* where to copy the record */
	uint64_t pos;		/* position of the record's end */
	uint64_t seq;		/* generation of the buffer */
	uint32_t off;		/* byte offset of ptr inside the buffer */
	unsigned idx;		/* ring slot holding the record */
};

/* Open the pipeline; starts the completion thread.  -EINVAL for bad
 * geometry, -errno from open/io_uring_queue_init. */
int br_store_open(const struct br_store_config *cfg, struct br_store **out);

/* Seal and write out everything, wait for it, flush the device, stop the
 * completion thread and free.  Returns the latched error, if any. */
int br_store_close(struct br_store *s);

/* Largest record br_store_reserve() accepts (buffer size minus header). */
uint32_t br_store_max_record(const struct br_store *s);

/* Room left for one record in the buffer being filled (br_ring_room: a
 * hint), a multiple of BR_REC_ALIGN, at most br_store_max_record(). */
uint32_t br_store_room(struct br_store *s);

/* Reserve `len` bytes (rounded up to BR_REC_ALIGN, padding zeroed) in the
 * current buffer.  Never blocks unless every buffer is sealed or in flight;
 * then waits for a completion.  -E2BIG if len > br_store_max_record(),
 * -EIO (or -ENOSPC: the log is full) once an error has latched. */
int br_store_reserve(struct br_store *s, uint32_t len, struct br_resv *r);

/* Release a reservation after the record has been copied in. */
void br_store_commit(struct br_store *s, const struct br_resv *r);

/* reserve + memcpy + commit; *pos (may be NULL) gets the position. */
int br_store_append(struct br_store *s, const void *rec, uint32_t len,
		    uint64_t *pos);

/* Make every position <= pos durable (see above).  0 or -EIO. */
int br_store_sync(struct br_store *s, uint64_t pos);

/* Seal the current buffer (if it holds anything) and start writing it,
 * without waiting. */
void br_store_flush(struct br_store *s);

/* Every position <= the returned one is durable. */
uint64_t br_store_durable_pos(struct br_store *s);

/* br_store_sync() of everything committed before the call. */
int br_store_sync_all(struct br_store *s);

/* Start of ring slot idx (for reads of records still pending: valid until
 * on_complete for that buffer has returned). */
const uint8_t *br_store_slot(struct br_store *s, unsigned idx);

/* Latch err (-EIO) as a failed write of the log does: a write of the
 * layer above to the device outside the log (the cleaner's copies)
 * failed for good. */
void br_store_fail(struct br_store *s, int err);

/* The latched error: 0, -EIO or -ENOSPC. */
int br_store_error(struct br_store *s);

/* This mount's random buffer nonce (see struct br_buf_header). */
uint32_t br_store_nonce(const struct br_store *s);

/* Log byte address the next buffer will be written at. */
uint64_t br_store_next_addr(struct br_store *s);

struct br_store_stats {
	uint64_t buffers;	/* buffers written */
	uint64_t bytes;		/* bytes written to the device (spans) */
	uint64_t retries;	/* writes resubmitted after a short or failed write */
	uint64_t dev_flushes;	/* fdatasync calls */
	uint64_t sync_calls;	/* br_store_sync calls that had to wait */
	int fixed_bufs;		/* 1: the ring is registered with io_uring */
};
void br_store_stats(struct br_store *s, struct br_store_stats *st);

#endif /* BR_STORE_H */
