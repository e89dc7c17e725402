/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The buffer ring: N buffers of B bytes, 4 KiB aligned, allocated once, that
 * many threads fill at the same time without a lock.
 *
 * State word per buffer (one _Atomic uint64_t, every snapshot consistent):
 *
 *   bits 63..32  write offset (next free byte, may run past the end: see
 *                "crossing" below)
 *   bits 31..8   writer count (reserved but not yet committed)
 *   bit  3       IDLE: written out and recycled, waiting to be opened
 *   bit  2       FLUSH_REQ: dispatch when the last writer leaves, even
 *                without auto_flush (manual flush)
 *   bit  1       FLUSHING: owned by the dispatcher, until the CQE
 *   bit  0       SEALED: no new reservations
 *
 * Reserve: a plain load rejects a sealed buffer, then ONE fetch-add of
 * (len << 32 | 1 writer).  If the range fits the reservation is the caller's.
 * Exactly one failed reservation "crosses" the end (its start is still
 * inside the buffer): that thread seals the buffer and the end of the
 * buffer's data is its start offset, so a buffer always holds records back
 * to back with no gap and no torn tail.  Other threads whose reservation
 * failed just drop their writer count and retry on the new current buffer.
 *
 * The seal owner (the crosser, or br_ring_seal for fsync, which seals by CAS
 * only while nobody has crossed) holds a writer count while it assigns the
 * buffer's log address (cfg.place, called in strict generation order) and
 * rotates `cur`; the last writer out of a sealed buffer wins FLUSHING and
 * calls cfg.dispatch.  br_ring_complete() recycles the buffer after its CQE.
 *
 * `cur` packs (generation << 8 | slot); rotation is one CAS on it, so a
 * thread holding an old snapshot can never rotate twice (no ABA), and
 * buffers open in slot order, one generation after the other.
 *
 * Capacity.  Each generation may hold `cap` bytes (header included),
 * buf_size unless cfg.place, while placing generation g, called
 * br_ring_set_next_cap() for g + 1 (the layer below knows where the next
 * buffer can go: core/store.c caps it to what is left of a segment whose
 * successor is not known yet).  A record that does not fit in a capped
 * buffer seals it as any other would (possibly empty: a header only) and
 * goes to the next one.  Capacity 0: nothing may be written now, so the
 * next generation is not opened; reserve asks cfg.unblock and returns
 * -ENOSPC (not latched) while there is still no room.
 *
 * Ring exhausted (the next slot still in flight): writers sleep on a futex
 * until br_ring_complete() recycles a buffer.  Nothing spins unbounded and
 * nothing is dropped; writers outnumbering buffers only wait longer.
 */
#ifndef BR_RING_H
#define BR_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define BR_RING_MAX_BUFS 64
#define BR_RING_MIN_BUF (64u << 10)
#define BR_RING_MAX_BUF (64u << 20)

struct br_ring;

struct br_ring_buf {
	_Atomic uint64_t state;	/* see above */
	_Atomic uint64_t seq;	/* generation; written before the open
				 * store that publishes it */
	_Atomic uint64_t placed; /* generation whose address is set (0: none) */
	uint64_t addr;		/* log address; written by the seal owner
				 * while it holds a writer count */
	uint32_t used;		/* bytes holding data, incl. the header area */
	uint32_t span;		/* used rounded up to 4096 */
	_Atomic uint32_t cap;	/* bytes this generation may fill, header
				 * included (<= buf_size, see "Capacity");
				 * set by the opener before the open store */
	unsigned idx;		/* slot in the ring */
	uint8_t *data;		/* buf_size bytes, 4096 aligned */
};

struct br_ring_config {
	unsigned nbuf;		/* 2..BR_RING_MAX_BUFS, default 4 */
	uint32_t buf_size;	/* multiple of 4096, BR_RING_MIN_BUF..MAX, default 1 MiB */
	uint32_t hdr_size;	/* bytes kept free at the start of each buffer
				 * for the layer above (< buf_size / 2) */
	bool manual_flush;	/* buffer_ring's auto_flush=false: a sealed
				 * buffer waits for br_ring_flush_buf() */
	bool manual_rotate;	/* buffer_ring's auto_rotate=false: after a
				 * seal, reserve returns -EAGAIN until
				 * br_ring_rotate() */
	uint64_t first_seq;	/* generation of the first buffer, >= 1 */
	uint32_t first_cap;	/* its capacity (see "Capacity"), 4096..
				 * buf_size; 0: buf_size */
	/* Assign a log address to a sealed buffer of `span` bytes.  Called once
	 * per buffer, in generation order.  A negative return latches that
	 * error in the ring. */
	int (*place)(void *ctx, struct br_ring_buf *b, uint64_t *addr);
	/* Optional.  cfg.place gave the next generation capacity 0 (with
	 * br_ring_set_next_cap), so the ring does not open it: return the
	 * capacity it may have now, 0 if still none.  Called by reservers,
	 * one at a time, between that placement and the next (never
	 * concurrently with cfg.place). */
	uint32_t (*unblock)(void *ctx);
	/* Write the sealed buffer out; call br_ring_complete() when done. */
	void (*dispatch)(void *ctx, struct br_ring_buf *b);
	void *ctx;
};

struct br_ring_resv {
	struct br_ring_buf *buf;
	uint8_t *ptr;
	uint64_t seq;
	uint32_t off;
};

/* Allocate the ring.  -EINVAL for bad geometry, -ENOMEM. */
int br_ring_create(const struct br_ring_config *cfg, struct br_ring **out);
void br_ring_destroy(struct br_ring *r);

/* Reserve len bytes (1..br_ring_max_record()).  0, -E2BIG, -EAGAIN (manual
 * rotate and current sealed), -ENOSPC (the next buffer has capacity 0 and
 * cfg.unblock found none: not latched), or the latched error. */
int br_ring_reserve(struct br_ring *r, uint32_t len, struct br_ring_resv *rv);

/* The copy is done: drop the writer count; dispatch if last out of a sealed
 * buffer. */
void br_ring_commit(struct br_ring *r, const struct br_ring_resv *rv);

/* Seal generation `seq` if it is the open buffer and holds data, so it will
 * be written out once its writers leave.  Returns true if the buffer with
 * that generation is (now) sealed or already gone, false if it is empty. */
bool br_ring_seal(struct br_ring *r, uint64_t seq);

/* Manual flush: dispatch generation `seq` as soon as its writers leave
 * (seals it first). */
void br_ring_flush_buf(struct br_ring *r, uint64_t seq);

/* Manual rotate (or help a stalled rotation).  0, -EAGAIN (nothing to do or
 * next slot busy). */
int br_ring_rotate(struct br_ring *r);

/* The buffer's write completed: recycle it (cfg.dispatch's counterpart). */
void br_ring_complete(struct br_ring *r, struct br_ring_buf *b);

/* From cfg.place only: the capacity of the generation after the one
 * being placed (header included; 0 or BR_BLOCK_SIZE..buf_size, a multiple
 * of 4096).  Not called: buf_size. */
void br_ring_set_next_cap(struct br_ring *r, uint32_t cap);

/* Latch an error: every later reserve returns it, waiters wake. */
void br_ring_fail(struct br_ring *r, int err);
int br_ring_error(struct br_ring *r);

uint32_t br_ring_max_record(const struct br_ring *r);
unsigned br_ring_nbuf(const struct br_ring *r);
uint32_t br_ring_buf_size(const struct br_ring *r);
struct br_ring_buf *br_ring_buf(struct br_ring *r, unsigned idx);

/* Generation of the buffer currently accepting writes. */
uint64_t br_ring_cur_seq(struct br_ring *r);

/* Bytes a reservation could still get in the buffer accepting writes now,
 * or br_ring_max_record() when it is sealed or not open yet (the next one
 * will be empty).  A hint: writers race for the room; a record cut to it
 * that no longer fits simply seals the buffer as any other would. */
uint32_t br_ring_room(struct br_ring *r);

/* Wait until every buffer with generation <= seq has been recycled or the
 * ring failed; 0 or the latched error. */
int br_ring_drain(struct br_ring *r, uint64_t seq);

/* The position of a record: generation and end offset. */
static inline uint64_t br_pos_make(uint64_t seq, uint32_t end)
{
	return seq << 32 | end;
}
static inline uint64_t br_pos_seq(uint64_t pos) { return pos >> 32; }

#endif /* BR_RING_H */
