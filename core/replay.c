/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Log scan for mount-time replay (and later recovery / fsck): read buffers
 * in address order, validate each one completely (header, CRC, record
 * framing) before handing any of its records on, stop at the first one
 * that fails.
 *
 * Reads are whole blocks into a 4096-aligned window, so the fd may be
 * O_DIRECT (see window_get for the read-ahead).  Buffers follow each other as format.h says: at the end
 * of the previous one while its segment has room, else in the segment the
 * previous header names (next_seg).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "fsys_int.h"
#include "util.h"

/* Every record lies inside the payload, with a sane length. */
static bool framing_ok(const uint8_t *p, uint32_t len)
{
	uint32_t off = 0;

	while (off < len) {
		const struct br_rec_header *h;
		uint32_t rl;

		if (len - off < sizeof(*h))
			return false;
		h = (const struct br_rec_header *)(p + off);
		rl = br_le32_get(h->len);
		/* rl first: br_rec_padded() wraps to 0 for rl near 4 GiB */
		if (rl < sizeof(*h) || rl > len - off ||
		    br_rec_padded(rl) > len - off)
			return false;
		off += br_rec_padded(rl);
	}
	return true;
}

/*
 * Read-ahead: buffers of a segment lie back to back, so the scan reads big
 * aligned pieces (up to the segment's end) instead of two small
 * synchronous reads per buffer; replay runs at the device's sequential
 * read speed rather than its latency.
 */
#define RA_BYTES (8u << 20)

struct window {
	uint8_t *mem;		/* cap bytes, 4096 aligned */
	size_t cap;
	uint64_t base;		/* log address of mem[0] */
	size_t len;		/* valid bytes at mem */
};

/*
 * Point *p at [addr, addr + len) of the log, which must end by seg_end.
 * 1 if done, 0 if the device ends first, -errno.
 */
static int window_get(struct br_replay *r, struct window *w, uint64_t addr,
		      uint32_t len, uint64_t seg_end, const uint8_t **p)
{
	size_t want;
	int err;

	if (addr >= w->base && addr + len <= w->base + w->len) {
		*p = w->mem + (addr - w->base);
		return 1;
	}
	want = seg_end - addr < RA_BYTES ? seg_end - addr : RA_BYTES;
	if (want < len)
		want = len;
	if (want > w->cap) {
		free(w->mem);
		w->mem = NULL;
		w->len = w->cap = 0;
		if (posix_memalign((void **)&w->mem, BR_BLOCK_SIZE, want))
			return -ENOMEM;
		w->cap = want;
	}
	w->len = 0;
	err = br_pread_full(r->fd, w->mem, want, addr);
	if (err == -ENODATA && want > len) {
		want = len;	/* near the end of the device: just the buffer */
		err = br_pread_full(r->fd, w->mem, want, addr);
	}
	if (err)
		return err == -ENODATA ? 0 : err;
	w->base = addr;
	w->len = want;
	*p = w->mem;
	return 1;
}

/*
 * Read and fully check the buffer at addr (expecting r->seq, r->nonce):
 * 1 and *bufp pointing at it (valid until the next call) if valid, 0 if
 * not, -errno for I/O and memory.
 */
static int load_buffer(struct br_replay *r, struct window *w, uint64_t addr,
		       uint64_t seg_size, const uint8_t **bufp)
{
	const struct br_buf_header *bh;
	const uint8_t *buf = NULL;
	uint64_t seg_end, next;
	uint32_t span, len;
	int ok;

	if (addr % BR_BLOCK_SIZE || addr < r->log_start ||
	    addr + BR_BLOCK_SIZE > r->log_end)
		return 0;
	seg_end = addr - (addr - r->log_start) % seg_size + seg_size;
	ok = window_get(r, w, addr, BR_BLOCK_SIZE, seg_end, &buf);
	if (ok <= 0)
		return ok;
	bh = (const struct br_buf_header *)buf;
	span = br_le32_get(bh->span);
	len = br_le32_get(bh->len);
	next = br_le64_get(bh->next_seg);
	if (br_le32_get(bh->magic) != BR_BUF_MAGIC ||
	    br_le64_get(bh->fsid) != r->fsid ||
	    br_le64_get(bh->seq) != r->seq ||
	    br_le32_get(bh->prev_nonce) != r->nonce ||
	    span == 0 || span % BR_BLOCK_SIZE || span > BR_RING_MAX_BUF ||
	    len > span - sizeof(*bh) || addr + span > seg_end ||
	    (next && (next < r->log_start || next + seg_size > r->log_end ||
		      (next - r->log_start) % seg_size)))
		return 0;
	ok = window_get(r, w, addr, span, seg_end, &buf);
	if (ok <= 0)
		return ok;
	if (br_crc32c(0, buf + 4, sizeof(*bh) - 4 + len) !=
	    br_le32_get(((const struct br_buf_header *)buf)->crc))
		return 0;
	if (!framing_ok(buf + sizeof(*bh), len))
		return 0;
	*bufp = buf;
	return 1;
}

int br_replay_scan(struct br_replay *r)
{
	uint64_t seg_size = r->seg_size ? r->seg_size : r->log_end - r->log_start;
	uint64_t prev_end = 0, prev_seg_end = 0, prev_next = 0;
	bool have_prev = false;
	struct window w = { 0 };
	const uint8_t *buf = NULL;
	int err = 0;

	r->seg_end = 0;
	r->next_seg = 0;
	for (;;) {
		const struct br_buf_header *bh;
		uint64_t addr, second = 0;	/* 0: no candidate (never
						 * a log address) */
		uint32_t len, off;
		int ok = 0;

		/* format.h: the next buffer is at the end of this one if that
		 * leaves a block in the segment, else (or if that fails) at
		 * next_seg; seq and the nonce chain tell which is real */
		if (!have_prev) {
			addr = r->addr;
		} else {
			addr = prev_end + BR_BLOCK_SIZE <= prev_seg_end ?
			       prev_end : 0;
			second = prev_next;
		}
		if (addr)
			ok = load_buffer(r, &w, addr, seg_size, &buf);
		if (ok == 0 && second) {
			addr = second;
			ok = load_buffer(r, &w, addr, seg_size, &buf);
		}
		if (ok < 0) {
			err = ok;
			goto out;
		}
		if (!ok)
			break;
		bh = (const struct br_buf_header *)buf;
		len = br_le32_get(bh->len);
		for (off = 0; off < len;) {
			const struct br_rec_header *h =
				(const struct br_rec_header *)(buf + sizeof(*bh) + off);
			uint32_t rl = br_le32_get(h->len);

			if (br_le16_get(h->type) != BR_REC_PAD) {
				err = r->fn(r->ctx, h, rl,
					    addr + sizeof(*bh) + off);
				if (err)
					goto out;
				r->records++;
			}
			off += br_rec_padded(rl);
		}
		r->buffers++;
		r->nonce = br_le32_get(bh->nonce);
		r->seq++;
		have_prev = true;
		prev_end = addr + br_le32_get(bh->span);
		prev_seg_end = addr - (addr - r->log_start) % seg_size + seg_size;
		prev_next = br_le64_get(bh->next_seg);
	}
	if (have_prev) {
		r->addr = prev_end;
		r->seg_end = prev_seg_end;
		r->next_seg = prev_next;
	}
out:
	free(w.mem);
	return err;
}
