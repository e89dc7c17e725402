/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Log scan for mount-time replay (and later recovery / fsck): read buffers
 * in address order, validate each one completely (header, CRC, record
 * framing) before handing any of its records on, stop at the first one
 * that fails.
 *
 * Reads are whole blocks into a 4096-aligned buffer, so the fd may be
 * O_DIRECT.  The first block is read alone to learn the span, then the rest
 * of the buffer.  Buffers follow each other as format.h says: at the end
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
 * Read and fully check the buffer at addr (expecting r->seq, r->nonce):
 * 1 and *bufp holding it if valid, 0 if not, -errno for I/O and memory.
 */
static int load_buffer(struct br_replay *r, uint64_t addr, uint64_t seg_size,
		       uint8_t **bufp, size_t *capp)
{
	const struct br_buf_header *bh;
	uint64_t seg_end, next;
	uint32_t span, len;
	uint8_t *buf = *bufp;
	int err;

	if (addr % BR_BLOCK_SIZE || addr < r->log_start ||
	    addr + BR_BLOCK_SIZE > r->log_end)
		return 0;
	seg_end = addr - (addr - r->log_start) % seg_size + seg_size;
	err = br_pread_full(r->fd, buf, BR_BLOCK_SIZE, addr);
	if (err == -ENODATA)
		return 0;
	if (err)
		return err;
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
	if (span > *capp) {
		uint8_t *nb;

		if (posix_memalign((void **)&nb, BR_BLOCK_SIZE, span))
			return -ENOMEM;
		memcpy(nb, buf, BR_BLOCK_SIZE);
		free(buf);
		*bufp = buf = nb;
		*capp = span;
		bh = (const struct br_buf_header *)buf;
	}
	if (span > BR_BLOCK_SIZE) {
		err = br_pread_full(r->fd, buf + BR_BLOCK_SIZE, span - BR_BLOCK_SIZE,
				addr + BR_BLOCK_SIZE);
		if (err == -ENODATA)
			return 0;
		if (err)
			return err;
	}
	if (br_crc32c(0, buf + 4, sizeof(*bh) - 4 + len) != br_le32_get(bh->crc))
		return 0;
	if (!framing_ok(buf + sizeof(*bh), len))
		return 0;
	return 1;
}

int br_replay_scan(struct br_replay *r)
{
	uint64_t seg_size = r->seg_size ? r->seg_size : r->log_end - r->log_start;
	uint64_t prev_end = 0, prev_seg_end = 0, prev_next = 0;
	bool have_prev = false;
	uint8_t *buf = NULL;
	size_t cap = BR_BLOCK_SIZE;
	int err = 0;

	r->seg_end = 0;
	r->next_seg = 0;
	if (posix_memalign((void **)&buf, BR_BLOCK_SIZE, cap))
		return -ENOMEM;
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
			ok = load_buffer(r, addr, seg_size, &buf, &cap);
		if (ok == 0 && second) {
			addr = second;
			ok = load_buffer(r, addr, seg_size, &buf, &cap);
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
	free(buf);
	return err;
}
