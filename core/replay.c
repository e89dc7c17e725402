/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Log scan for mount-time replay (and later recovery / fsck): read buffers
 * in address order, validate each one completely (header, CRC, record
 * framing) before handing any of its records on, stop at the first one
 * that fails.
 *
 * Reads are whole blocks into a 4096-aligned buffer, so the fd may be
 * O_DIRECT.  The first block is read alone to learn the span, then the rest
 * of the buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "fsys_int.h"

static int read_full(int fd, void *buf, size_t len, uint64_t off)
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
			return -ENODATA;	/* past the end of the device */
		done += (size_t)n;
	}
	return 0;
}

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
		if (rl < sizeof(*h) || br_rec_padded(rl) > len - off)
			return false;
		off += br_rec_padded(rl);
	}
	return true;
}

int br_replay_scan(struct br_replay *r)
{
	uint8_t *buf = NULL;
	size_t cap = 0;
	int err = 0;

	for (;;) {
		const struct br_buf_header *bh;
		uint32_t span, len, off;

		if (r->addr % BR_BLOCK_SIZE ||
		    r->addr + BR_BLOCK_SIZE > r->log_end)
			break;
		if (cap < BR_BLOCK_SIZE) {
			cap = BR_BLOCK_SIZE;
			if (posix_memalign((void **)&buf, BR_BLOCK_SIZE, cap)) {
				err = -ENOMEM;
				goto out;
			}
		}
		err = read_full(r->fd, buf, BR_BLOCK_SIZE, r->addr);
		if (err == -ENODATA) {
			err = 0;
			break;
		}
		if (err)
			goto out;
		bh = (const struct br_buf_header *)buf;
		span = br_le32_get(bh->span);
		len = br_le32_get(bh->len);
		if (br_le32_get(bh->magic) != BR_BUF_MAGIC ||
		    br_le64_get(bh->fsid) != r->fsid ||
		    br_le64_get(bh->seq) != r->seq ||
		    br_le32_get(bh->prev_nonce) != r->nonce ||
		    span == 0 || span % BR_BLOCK_SIZE ||
		    span > BR_RING_MAX_BUF ||
		    len > span - sizeof(*bh) ||
		    r->addr + span > r->log_end)
			break;
		if (span > cap) {
			uint8_t *nb;

			if (posix_memalign((void **)&nb, BR_BLOCK_SIZE, span)) {
				err = -ENOMEM;
				goto out;
			}
			memcpy(nb, buf, BR_BLOCK_SIZE);
			free(buf);
			buf = nb;
			cap = span;
			bh = (const struct br_buf_header *)buf;
		}
		if (span > BR_BLOCK_SIZE) {
			err = read_full(r->fd, buf + BR_BLOCK_SIZE,
					span - BR_BLOCK_SIZE,
					r->addr + BR_BLOCK_SIZE);
			if (err == -ENODATA) {
				err = 0;
				break;
			}
			if (err)
				goto out;
		}
		if (br_crc32c(0, buf + 4, sizeof(*bh) - 4 + len) !=
		    br_le32_get(bh->crc))
			break;
		if (!framing_ok(buf + sizeof(*bh), len))
			break;
		for (off = 0; off < len;) {
			const struct br_rec_header *h =
				(const struct br_rec_header *)(buf + sizeof(*bh) + off);
			uint32_t rl = br_le32_get(h->len);

			if (br_le16_get(h->type) != BR_REC_PAD) {
				err = r->fn(r->ctx, h, rl,
					    r->addr + sizeof(*bh) + off);
				if (err)
					goto out;
				r->records++;
			}
			off += br_rec_padded(rl);
		}
		r->buffers++;
		r->nonce = br_le32_get(bh->nonce);
		r->addr += span;
		r->seq++;
	}
out:
	free(buf);
	return err;
}
