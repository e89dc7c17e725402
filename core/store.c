/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The write pipeline (see store.h): ring -> uring -> durable, plus the
 * buffer header every flushed buffer starts with.
 *
 * Placement: log addresses are handed out by the seal owner of each buffer,
 * in generation order (ring.h guarantees it), from a cursor that only seal
 * owners touch; the ring's rotation chain orders them, so no atomic is
 * needed.  A buffer that does not fit in the rest of its segment goes to
 * the segment chosen in advance (next_seg, written in every header: see
 * format.h).  A segment may be entered while no other is free; then the
 * buffers placed in it are capped so that each leaves room for a
 * successor in the same segment (store_next_cap), the allocator is asked
 * again at every placement, and when only the last block is left the
 * ring opens no buffer until a segment is free: reservations get -ENOSPC
 * meanwhile, not latched (store_unblock).  A full log is an error of the
 * moment, never a wedge.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "crc32c.h"
#include "durable.h"
#include "format.h"

struct store_slot {
	struct br_uring_op op;	/* first: container_of by cast */
	struct br_store *s;
	struct br_ring_buf *b;
	uint64_t seq;		/* generation in flight in this slot */
	uint64_t next_seg;	/* for its header, set at placement */
};

struct br_store {
	struct br_store_config cfg;
	int fd;
	bool own_fd;
	struct br_ring *ring;
	struct br_uring *uring;
	struct br_durable dur;
	uint64_t next_addr;	/* placement cursor, see above; stored
				 * atomically, read so by other threads
				 * (br_store_next_addr) */
	uint64_t seg_end;	/* end of the segment next_addr is in */
	uint64_t next_seg;	/* where the log goes after it (0: nowhere) */
	uint32_t nonce;		/* this mount's, never 0 */
	_Atomic uint64_t buffers, bytes, syncs;
	struct store_slot slots[BR_RING_MAX_BUFS];
};

/* The segment after `seg`, or 0. */
static int store_pick_seg(struct br_store *s, uint64_t seg, uint64_t *next)
{
	if (s->cfg.alloc_seg)
		return s->cfg.alloc_seg(s->cfg.alloc_ctx ? s->cfg.alloc_ctx :
					s->cfg.ctx, seg, next);
	*next = seg + s->cfg.seg_size + s->cfg.seg_size <= s->cfg.log_end ?
		seg + s->cfg.seg_size : 0;
	return 0;
}

/*
 * Capacity of the buffer after the one just placed (br_ring_set_next_cap).
 * With a next segment chosen it is what is left of this segment, so the
 * segment's tail is not lost when a sync seals a buffer early (the next
 * one would not fit and go to the next segment: with the cleaner syncing
 * every pass, a fifth of the log went that way at 90 % full, and every
 * segment lost is dead space the victims must make up for); with less
 * than two blocks left, a whole buffer in the next segment.  Without one
 * its successor must lie in what is left of this
 * segment (format.h: replay looks at the end of the previous buffer, then
 * at the next_seg that buffer names), and a buffer placed here while
 * still no segment is free must in turn leave a block for the one after
 * it.  So it gets the room less a block; with only one block left it gets
 * nothing (the ring does not open it) until store_unblock finds a
 * segment, and then the last block.
 */
static uint32_t store_next_cap(const struct br_store *s)
{
	uint64_t room = s->seg_end - s->next_addr;

	if (s->next_seg)
		return room >= 2 * BR_BLOCK_SIZE && room <= UINT32_MAX ?
		       (uint32_t)room : UINT32_MAX;
	if (room < 2 * BR_BLOCK_SIZE)
		return 0;
	room -= BR_BLOCK_SIZE;
	return room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
}

/* The ring's unblock callback: store_next_cap gave the next buffer no
 * room; runs between two placements (ring.h).  Room it may have now. */
static uint32_t store_unblock(void *ctx)
{
	struct br_store *s = ctx;
	uint64_t room = s->seg_end - s->next_addr;

	if (!s->next_seg && s->cfg.alloc_seg &&
	    store_pick_seg(s, s->seg_end - s->cfg.seg_size, &s->next_seg))
		return 0;
	if (!s->next_seg)
		return 0;
	return room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
}

static int store_place(void *ctx, struct br_ring_buf *b, uint64_t *addr)
{
	struct br_store *s = ctx;
	int err = 0;

	/* A segment entered while none was free: try again at every
	 * buffer, so the first buffer placed once one is (a checkpoint or
	 * a durable delete freed it) names where the log goes. */
	if (!s->next_seg && s->cfg.alloc_seg) {
		err = store_pick_seg(s, s->seg_end - s->cfg.seg_size,
				     &s->next_seg);
		if (err) {
			br_durable_fail(&s->dur, err);
			return err;
		}
	}
	if (s->next_addr + b->span > s->seg_end) {
		uint64_t seg = s->next_seg;

		/* Without a next segment the ring capped this buffer to
		 * the room here (store_next_cap), so this fails only when
		 * a buffer the size of a whole segment finds nothing free
		 * after it (segments of one buffer). */
		if (!seg)
			err = -ENOSPC;
		else
			err = store_pick_seg(s, seg, &s->next_seg);
		if (!err && !s->next_seg &&
		    b->span + BR_BLOCK_SIZE > s->cfg.seg_size)
			err = -ENOSPC;
		if (err) {
			/* Nothing after this buffer can become durable: tell
			 * waiters now rather than let them wait for a write
			 * that never comes. */
			br_durable_fail(&s->dur, err);
			return err;
		}
		__atomic_store_n(&s->next_addr, seg, __ATOMIC_RELAXED);
		s->seg_end = seg + s->cfg.seg_size;
	}
	*addr = s->next_addr;
	__atomic_store_n(&s->next_addr, *addr + b->span, __ATOMIC_RELAXED);
	s->slots[b->idx].next_seg = s->next_seg;
	br_ring_set_next_cap(s->ring, store_next_cap(s));
	if (s->cfg.placed)
		s->cfg.placed(s->cfg.alloc_ctx ? s->cfg.alloc_ctx : s->cfg.ctx,
			      *addr,
			      atomic_load_explicit(&b->seq, memory_order_relaxed));
	return 0;
}

static void store_done(struct br_uring_op *op, int err)
{
	struct store_slot *sl = (struct store_slot *)op;
	struct br_store *s = sl->s;
	struct br_store_done d = {
		.seq = sl->seq,
		.addr = op->off,
		.data = sl->b->data,
		.used = sl->b->used,
		.idx = sl->b->idx,
		.err = err,
	};

	if (err) {
		/* Tell the layer above first (it turns read-only), then
		 * latch: the ring refuses new records, durability stops
		 * before this buffer and waiters wake with -EIO.  The buffer
		 * is not recycled, so its records can still be read from
		 * memory. */
		if (s->cfg.on_complete)
			s->cfg.on_complete(s->cfg.ctx, &d);
		br_ring_fail(s->ring, -EIO);
		br_durable_complete(&s->dur, sl->seq, err);
		return;
	}
	if (s->cfg.on_complete)
		s->cfg.on_complete(s->cfg.ctx, &d);
	atomic_fetch_add_explicit(&s->buffers, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->bytes, op->len, memory_order_relaxed);
	br_durable_complete(&s->dur, sl->seq, 0);
	br_ring_complete(s->ring, sl->b);
}

/* Last writer out of a sealed buffer: header, CRC, padding, submit. */
static void store_dispatch(void *ctx, struct br_ring_buf *b)
{
	struct br_store *s = ctx;
	struct store_slot *sl = &s->slots[b->idx];
	struct br_buf_header *h = (struct br_buf_header *)b->data;
	uint64_t seq = atomic_load_explicit(&b->seq, memory_order_relaxed);

	h->magic = br_le32_put(BR_BUF_MAGIC);
	h->seq = br_le64_put(seq);
	h->len = br_le32_put(b->used - (uint32_t)sizeof(*h));
	h->span = br_le32_put(b->span);
	h->fsid = br_le64_put(s->cfg.fsid);
	h->nonce = br_le32_put(s->nonce);
	h->prev_nonce = br_le32_put(seq == s->cfg.next_seq ? s->cfg.prev_nonce
							   : s->nonce);
	h->next_seg = br_le64_put(sl->next_seg);
	h->crc = br_le32_put(br_crc32c(0, b->data + 4, b->used - 4));
	memset(b->data + b->used, 0, b->span - b->used);

	sl->seq = seq;
	sl->op.buf = b->data;
	sl->op.len = b->span;
	sl->op.off = b->addr;
	sl->op.order = seq;
	br_uring_write(s->uring, &sl->op);
}

int br_store_open(const struct br_store_config *cfg, struct br_store **out)
{
	struct br_store *s;
	struct br_ring_config rc = { 0 };
	struct br_uring_config uc = { 0 };
	struct iovec iov[BR_RING_MAX_BUFS];	/* registered by br_uring_open */
	int err;

	if (cfg->log_start % BR_BLOCK_SIZE || cfg->next_addr % BR_BLOCK_SIZE ||
	    cfg->next_addr < cfg->log_start || cfg->next_addr > cfg->log_end ||
	    cfg->seg_size % BR_BLOCK_SIZE || !cfg->next_seq ||
	    (cfg->seg_size && (cfg->log_end - cfg->log_start) % cfg->seg_size))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (!s->cfg.seg_size)
		s->cfg.seg_size = cfg->log_end - cfg->log_start;
	s->next_addr = cfg->next_addr;
	s->seg_end = cfg->seg_end ? cfg->seg_end :
		cfg->log_start + (cfg->next_addr - cfg->log_start) /
		s->cfg.seg_size * s->cfg.seg_size + s->cfg.seg_size;
	if (s->seg_end > cfg->log_end || s->next_addr > s->seg_end ||
	    (s->seg_end - cfg->log_start) % s->cfg.seg_size) {
		err = -EINVAL;
		goto err_free;
	}
	s->next_seg = cfg->next_seg;
	if (!s->next_seg) {
		err = store_pick_seg(s, s->seg_end - s->cfg.seg_size,
				     &s->next_seg);
		if (err)
			goto err_free;
	}
	do {
		if (getrandom(&s->nonce, sizeof(s->nonce), 0) !=
		    sizeof(s->nonce)) {
			err = -errno;
			goto err_free;
		}
	} while (s->nonce == 0 || s->nonce == cfg->prev_nonce);
	if (cfg->fd >= 0 && !cfg->path) {
		s->fd = cfg->fd;
	} else {
		s->fd = open(cfg->path, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (s->fd < 0) {
			err = -errno;
			goto err_free;
		}
		s->own_fd = true;
	}
	err = br_durable_init(&s->dur, s->fd, cfg->next_seq);
	if (err)
		goto err_close;

	rc.nbuf = cfg->nbuf;
	rc.buf_size = cfg->buf_size;
	rc.hdr_size = sizeof(struct br_buf_header);
	rc.first_seq = cfg->next_seq;
	rc.place = store_place;
	rc.dispatch = store_dispatch;
	rc.unblock = store_unblock;
	/* a mount may find the log in a segment with no successor */
	rc.first_cap = store_next_cap(s);
	if (!rc.first_cap)
		rc.first_cap = BR_BLOCK_SIZE;	/* the last block: a buffer
						 * that names a segment if one
						 * is free by then */
	rc.ctx = s;
	err = br_ring_create(&rc, &s->ring);
	if (err)
		goto err_durable;
	if (s->cfg.seg_size < br_ring_buf_size(s->ring)) {
		err = -EINVAL;	/* a full buffer must fit in a segment */
		goto err_ring;
	}
	for (unsigned i = 0; i < br_ring_nbuf(s->ring); i++) {
		s->slots[i].s = s;
		s->slots[i].b = br_ring_buf(s->ring, i);
		s->slots[i].op.done = store_done;
	}

	for (unsigned i = 0; i < br_ring_nbuf(s->ring); i++) {
		iov[i].iov_base = s->slots[i].b->data;
		iov[i].iov_len = br_ring_buf_size(s->ring);
		s->slots[i].op.fixed = (int)i;
	}
	uc.fixed = iov;
	uc.nfixed = br_ring_nbuf(s->ring);
	uc.fd = s->fd;
	uc.mode = cfg->mode;
	uc.first_order = cfg->next_seq;
	uc.fault = cfg->fault;
	uc.fault_ctx = cfg->fault_ctx;
	err = br_uring_open(&uc, &s->uring);
	if (err)
		goto err_ring;
	*out = s;
	return 0;

err_ring:
	br_ring_destroy(s->ring);
err_durable:
	br_durable_destroy(&s->dur);
err_close:
	if (s->own_fd)
		close(s->fd);
err_free:
	free(s);
	return err;
}

int br_store_close(struct br_store *s)
{
	int err;

	if (!s)
		return 0;
	err = br_store_sync_all(s);
	br_uring_close(s->uring);
	if (!err)
		err = br_ring_error(s->ring);
	br_ring_destroy(s->ring);
	br_durable_destroy(&s->dur);
	if (s->own_fd && close(s->fd) && !err)
		err = -errno;
	free(s);
	return err;
}

uint32_t br_store_max_record(const struct br_store *s)
{
	return br_ring_max_record(s->ring) & ~(BR_REC_ALIGN - 1);
}

uint32_t br_store_room(struct br_store *s)
{
	uint32_t room = br_ring_room(s->ring), max = br_store_max_record(s);

	return (room < max ? room : max) & ~(BR_REC_ALIGN - 1);
}

int br_store_reserve(struct br_store *s, uint32_t len, struct br_resv *r)
{
	uint32_t padded = br_rec_padded(len);
	struct br_ring_resv rv;
	int err;

	if (len > br_store_max_record(s))
		return -E2BIG;
	err = br_ring_reserve(s->ring, padded, &rv);
	if (err)
		return err;
	if (padded != len)
		memset(rv.ptr + len, 0, padded - len);
	r->ptr = rv.ptr;
	r->seq = rv.seq;
	r->off = rv.off;
	r->idx = rv.buf->idx;
	r->pos = br_pos_make(rv.seq, rv.off + padded);
	return 0;
}

void br_store_commit(struct br_store *s, const struct br_resv *r)
{
	struct br_ring_resv rv = {
		.buf = br_ring_buf(s->ring, r->idx),
	};

	br_ring_commit(s->ring, &rv);
}

int br_store_append(struct br_store *s, const void *rec, uint32_t len,
		    uint64_t *pos)
{
	struct br_resv r;
	int err = br_store_reserve(s, len, &r);

	if (err)
		return err;
	memcpy(r.ptr, rec, len);
	br_store_commit(s, &r);
	if (pos)
		*pos = r.pos;
	return 0;
}

int br_store_sync(struct br_store *s, uint64_t pos)
{
	uint64_t seq = br_pos_seq(pos);

	if (br_durable_get(&s->dur) >= seq)
		return 0;
	atomic_fetch_add_explicit(&s->syncs, 1, memory_order_relaxed);
	if (!br_ring_seal(s->ring, seq)) {
		/* Empty or not yet opened: nothing of it to wait for; wait
		 * for what came before. */
		seq--;
	}
	return br_durable_wait(&s->dur, seq);
}

int br_store_sync_all(struct br_store *s)
{
	return br_store_sync(s, br_pos_make(br_ring_cur_seq(s->ring), 0));
}

void br_store_flush(struct br_store *s)
{
	br_ring_seal(s->ring, br_ring_cur_seq(s->ring));
}

uint64_t br_store_durable_pos(struct br_store *s)
{
	uint64_t d = br_durable_get(&s->dur);

	return d ? br_pos_make(d, UINT32_MAX) : 0;
}

const uint8_t *br_store_slot(struct br_store *s, unsigned idx)
{
	return br_ring_buf(s->ring, idx)->data;
}

void br_store_fail(struct br_store *s, int err)
{
	br_ring_fail(s->ring, err);
	br_durable_fail(&s->dur, err);
}

int br_store_error(struct br_store *s)
{
	return br_ring_error(s->ring);
}

uint32_t br_store_nonce(const struct br_store *s)
{
	return s->nonce;
}

uint64_t br_store_next_addr(struct br_store *s)
{
	return __atomic_load_n(&s->next_addr, __ATOMIC_RELAXED);
}

void br_store_stats(struct br_store *s, struct br_store_stats *st)
{
	struct br_uring_stats us;

	br_uring_stats(s->uring, &us);
	pthread_mutex_lock(&s->dur.lock);
	st->dev_flushes = s->dur.flushes;
	pthread_mutex_unlock(&s->dur.lock);
	st->buffers = atomic_load_explicit(&s->buffers, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
	st->retries = us.retries;
	st->fixed_bufs = us.fixed;
	st->sync_calls = atomic_load_explicit(&s->syncs, memory_order_relaxed);
}
