/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Log chain walker for the crash tests (see chain.h). */
#include "chain.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

static void why_set(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

int chain_read_slot(int fd, const struct br_super *sb, unsigned which,
		    struct br_slot *slot)
{
	static _Alignas(4096) uint8_t blk[BR_BLOCK_SIZE];
	int err = read_at(fd, blk, sizeof(blk), BR_SLOT_OFF(which));

	if (err)
		return err;
	err = br_slot_decode(sb, blk, slot);
	if (!err)
		slot->which = which;
	return err;
}

int chain_open_slot(int fd, struct chain *c, int which, char *why,
		    size_t why_len)
{
	int err;

	memset(c, 0, sizeof(*c));
	err = br_super_read(fd, &c->sb);
	if (err) {
		why_set(why, why_len, "superblock: %s", strerror(-err));
		return err;
	}
	if (which < 0)
		err = br_slot_read_newest(fd, &c->sb, &c->slot);
	else
		err = chain_read_slot(fd, &c->sb, (unsigned)which, &c->slot);
	if (err) {
		why_set(why, why_len, "checkpoint slot%s: %s", which < 0 ? "s" : "",
			strerror(-err));
		return err;
	}
	c->fsid = br_super_fsid(&c->sb);
	c->end = c->slot.roll_addr;
	c->next_seq = c->slot.roll_seq;
	c->nonce = c->slot.roll_nonce;	/* the slot names the roll-forward point */
	return 0;
}

int chain_open(int fd, struct chain *c, char *why, size_t why_len)
{
	return chain_open_slot(fd, c, -1, why, why_len);
}

void chain_free(struct chain *c)
{
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

bool chain_buf_ok(const struct chain *c, const uint8_t *b, uint64_t addr,
		  uint64_t seq, uint32_t prev_nonce, bool full, char *why,
		  size_t wl)
{
	const struct br_buf_header *h = (const void *)b;
	uint32_t span = br_le32_get(h->span), len = br_le32_get(h->len);

	if (br_le32_get(h->magic) != BR_BUF_MAGIC) {
		why_set(why, wl, "no buffer magic at %llu", (unsigned long long)addr);
		return false;
	}
	if (br_le64_get(h->fsid) != c->fsid) {
		why_set(why, wl, "foreign fsid at %llu", (unsigned long long)addr);
		return false;
	}
	if (br_le64_get(h->seq) != seq) {
		why_set(why, wl, "seq %llu at %llu, expected %llu",
			(unsigned long long)br_le64_get(h->seq),
			(unsigned long long)addr, (unsigned long long)seq);
		return false;
	}
	if (br_le32_get(h->prev_nonce) != prev_nonce) {
		why_set(why, wl, "nonce chain broken at %llu (prev_nonce %08x, expected %08x)",
			(unsigned long long)addr, br_le32_get(h->prev_nonce), prev_nonce);
		return false;
	}
	if (span == 0 || span % BR_BLOCK_SIZE || span > BR_BUF_SIZE_MAX ||
	    len > span - sizeof(*h) || addr + span > c->sb.log_end) {
		why_set(why, wl, "bad span/len %u/%u at %llu", span, len,
			(unsigned long long)addr);
		return false;
	}
	if (addr / c->sb.seg_size != (addr + span - 1) / c->sb.seg_size) {
		why_set(why, wl, "buffer at %llu crosses a segment boundary",
			(unsigned long long)addr);
		return false;
	}
	if (!full)
		return true;
	if (br_crc32c(0, b + 4, sizeof(*h) - 4 + len) != br_le32_get(h->crc)) {
		why_set(why, wl, "CRC mismatch at %llu", (unsigned long long)addr);
		return false;
	}
	for (uint32_t off = 0; off < len;) {
		const struct br_rec_header *r = (const void *)(b + sizeof(*h) + off);
		uint32_t rl;

		if (len - off < sizeof(*r)) {
			why_set(why, wl, "record header cut at %llu", (unsigned long long)addr);
			return false;
		}
		rl = br_le32_get(r->len);
		/* rl > len - off first: br_rec_padded() of a length near
		 * 2^32 wraps to 0 */
		if (rl < sizeof(*r) || rl > len - off || br_rec_padded(rl) > len - off) {
			why_set(why, wl, "record length %u at %llu+%u", rl,
				(unsigned long long)addr, off);
			return false;
		}
		off += br_rec_padded(rl);
	}
	return true;
}

/* Read the buffer at addr into *buf (first block only unless full) and
 * check it against the chain; 1 valid, 0 not, -errno. */
static int try_buf(int fd, struct chain *c, uint64_t addr, bool full,
		   uint8_t **buf, size_t *cap)
{
	const struct br_buf_header *h;
	uint32_t span;
	int err;

	if (addr < c->sb.log_start || addr % BR_BLOCK_SIZE ||
	    addr + BR_BLOCK_SIZE > c->sb.log_end) {
		why_set(c->stop, sizeof(c->stop), "address %llu outside the log",
			(unsigned long long)addr);
		return 0;
	}
	err = read_at(fd, *buf, BR_BLOCK_SIZE, addr);
	if (err == -ENODATA) {
		why_set(c->stop, sizeof(c->stop), "end of the image");
		return 0;
	}
	if (err)
		return err;
	if (!chain_buf_ok(c, *buf, addr, c->next_seq, c->nonce, false,
			  c->stop, sizeof(c->stop)))
		return 0;
	h = (const void *)*buf;
	span = br_le32_get(h->span);
	if (!full)
		return 1;
	if (span > *cap) {
		uint8_t *nb = realloc(*buf, span);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = span;
	}
	if (span > BR_BLOCK_SIZE) {
		err = read_at(fd, *buf + BR_BLOCK_SIZE, span - BR_BLOCK_SIZE,
			      addr + BR_BLOCK_SIZE);
		if (err == -ENODATA) {
			why_set(c->stop, sizeof(c->stop), "buffer cut by the end of the image");
			return 0;
		}
		if (err)
			return err;
	}
	return chain_buf_ok(c, *buf, addr, c->next_seq, c->nonce, true,
			    c->stop, sizeof(c->stop));
}

/*
 * format.h: the buffer after X (at addr, span bytes, in the segment that
 * ends at seg_end) is at addr + span if that leaves at least one block in
 * the segment, else at X.next_seg; recovery tries addr + span first and
 * X.next_seg second.  c->end / c->next_seg describe X (the roll-forward
 * point when no buffer was found yet: then only c->end).
 */
long chain_walk(int fd, struct chain *c, bool full)
{
	static uint8_t *buf;	/* grows, reused: tests are single-threaded */
	static size_t cap;
	long added = 0;

	if (cap < BR_BLOCK_SIZE) {
		free(buf);
		buf = malloc(BR_BLOCK_SIZE);
		if (!buf)
			return -ENOMEM;
		cap = BR_BLOCK_SIZE;
	}
	for (;;) {
		const struct br_buf_header *h;
		uint64_t cand[2], addr = 0;
		unsigned nc = 0;
		int ok = 0;

		if (c->n == 0) {
			cand[nc++] = c->end;
		} else {
			const struct chain_buf *x = &c->v[c->n - 1];
			uint64_t seg_end = (x->addr / c->sb.seg_size + 1) * c->sb.seg_size;

			if (c->end + BR_BLOCK_SIZE <= seg_end)
				cand[nc++] = c->end;
			if (x->next_seg)
				cand[nc++] = x->next_seg;
		}
		if (nc == 0)
			why_set(c->stop, sizeof(c->stop), "segment full and next_seg is 0");
		for (unsigned i = 0; i < nc && ok == 0; i++) {
			addr = cand[i];
			ok = try_buf(fd, c, addr, full, &buf, &cap);
			if (ok < 0)
				return ok;
		}
		if (!ok)
			break;
		h = (const void *)buf;
		if (c->n == c->cap) {
			size_t ncap = c->cap ? 2 * c->cap : 256;
			struct chain_buf *v = realloc(c->v, ncap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			c->v = v;
			c->cap = ncap;
		}
		c->v[c->n++] = (struct chain_buf){
			.addr = addr, .seq = c->next_seq, .span = br_le32_get(h->span),
			.len = br_le32_get(h->len), .nonce = br_le32_get(h->nonce),
			.prev_nonce = br_le32_get(h->prev_nonce),
			.next_seg = br_le64_get(h->next_seg),
		};
		c->end = addr + br_le32_get(h->span);
		c->next_seq++;
		c->nonce = br_le32_get(h->nonce);
		added++;
	}
	return added;
}
