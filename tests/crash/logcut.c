/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * logcut: inspect and damage the log of an unmounted bringfs image, for the
 * power-cut tests.  Walks the buffer chain with tests/crash/chain.c (an
 * implementation independent of core/replay.c) and prints, for every
 * damaging command, the address where a correct replay must now stop:
 *
 *   logcut list IMAGE          one line per valid buffer, then a summary
 *   logcut end IMAGE           the end address of the valid chain
 *   logcut cut IMAGE K         keep buffers 0..K-1, zero buffers K.. of
 *                              the chain
 *   logcut tear IMAGE K BYTES  buffer K keeps its first BYTES (a multiple
 *                              of 512: a torn write), the rest of it and
 *                              the chain's buffers after it are zeroed
 *   logcut flip IMAGE K OFF [MASK]  xor one byte of buffer K (MASK, default
 *                              0x01); nothing else changes
 *   logcut hole IMAGE K        zero buffer K only: K+1.. stay on disk
 *   logcut random IMAGE SEED   one of cut/tear/flip at a random buffer,
 *                              chosen by SEED
 *   logcut peek IMAGE ADDR SEQ PREV_NONCE
 *                              is there a buffer at ADDR that is valid in
 *                              itself (magic, fsid, CRC) and carries SEQ?
 *                              exit 0 and "match nonce-ok|nonce-bad",
 *                              else exit 3
 *
 * Damaging commands print "P=<addr> Pc=<addr> K=<k> model=<what> ...":
 * replay must stop before the buffer at P, i.e. keep exactly the buffers
 * before it; Pc is the end of the last kept buffer (differs from P when the
 * buffer at P was reached through next_seg: either is a correct place for
 * the next mount to continue).  They refuse (exit 2) to touch an image whose flock is held
 * (mounted).  Exit 1 on usage or I/O errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "chain.h"
#include "crc32c.h"

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "logcut: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s)
		die("bad number '%s'", s);
	return v;
}

static void zero_range(int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (!len)
		return;
	/* Whole blocks: punch (cheap on a sparse image); edges: write. */
	if (off % BR_BLOCK_SIZE == 0 && len % BR_BLOCK_SIZE == 0 &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		ssize_t w = pwrite(fd, zeros, n, (off_t)off);

		if (w <= 0)
			die("pwrite: %s", strerror(errno));
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
}

static void flip_byte(int fd, uint64_t off, uint8_t mask)
{
	uint8_t b;

	if (pread(fd, &b, 1, (off_t)off) != 1)
		die("pread: %s", strerror(errno));
	b ^= mask;
	if (pwrite(fd, &b, 1, (off_t)off) != 1)
		die("pwrite: %s", strerror(errno));
}

/* xorshift64*, seeded: the same SEED picks the same damage. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

int main(int argc, char **argv)
{
	struct chain c;
	const char *cmd, *image;
	char why[200];
	int fd, err;
	long got;
	bool mutate;

	if (argc < 3) {
		fprintf(stderr, "usage: logcut list|end|cut|tear|flip|hole|random|peek IMAGE [args]\n");
		return 1;
	}
	cmd = argv[1];
	image = argv[2];
	mutate = strcmp(cmd, "list") && strcmp(cmd, "end") && strcmp(cmd, "peek");
	fd = open(image, mutate ? O_RDWR : O_RDONLY);
	if (fd < 0)
		die("cannot open %s", image);
	if (mutate && flock(fd, LOCK_EX | LOCK_NB)) {
		fprintf(stderr, "logcut: %s is locked (mounted?)\n", image);
		return 2;
	}
	err = chain_open(fd, &c, why, sizeof(why));
	if (err)
		die("%s", why);
	got = chain_walk(fd, &c, true);
	if (got < 0)
		die("walk: %s", strerror((int)-got));

	if (!strcmp(cmd, "list")) {
		for (size_t i = 0; i < c.n; i++)
			printf("%zu addr=%" PRIu64 " seq=%" PRIu64 " span=%u len=%u nonce=%08x prev=%08x next_seg=%" PRIu64 "\n",
			       i, c.v[i].addr, c.v[i].seq, c.v[i].span, c.v[i].len,
			       c.v[i].nonce, c.v[i].prev_nonce, c.v[i].next_seg);
		printf("end=%" PRIu64 " buffers=%zu next_seq=%" PRIu64 " last_nonce=%08x log_start=%" PRIu64 " log_end=%" PRIu64 " stop=%s\n",
		       c.end, c.n, c.next_seq, c.nonce, c.sb.log_start, c.sb.log_end, c.stop);
		return 0;
	}
	if (!strcmp(cmd, "end")) {
		printf("%" PRIu64 "\n", c.end);
		return 0;
	}
	if (!strcmp(cmd, "peek")) {
		uint64_t addr, seq;
		uint32_t prev;
		uint8_t *b;
		const struct br_buf_header *h;
		uint32_t span, len;

		if (argc != 6)
			die("%s", "peek IMAGE ADDR SEQ PREV_NONCE");
		addr = num(argv[3]);
		seq = num(argv[4]);
		prev = (uint32_t)num(argv[5]);
		b = malloc(BR_BUF_SIZE_MAX);
		if (!b || pread(fd, b, BR_BLOCK_SIZE, (off_t)addr) != BR_BLOCK_SIZE)
			return 3;
		h = (const void *)b;
		span = br_le32_get(h->span);
		len = br_le32_get(h->len);
		if (br_le32_get(h->magic) != BR_BUF_MAGIC || br_le64_get(h->fsid) != c.fsid ||
		    br_le64_get(h->seq) != seq || !span || span > BR_BUF_SIZE_MAX ||
		    span % BR_BLOCK_SIZE || len > span - sizeof(*h))
			return 3;
		if (pread(fd, b, span, (off_t)addr) != (ssize_t)span)
			return 3;
		if (br_crc32c(0, b + 4, sizeof(*h) - 4 + len) != br_le32_get(h->crc))
			return 3;
		printf("match %s\n", br_le32_get(h->prev_nonce) == prev ? "nonce-ok" : "nonce-bad");
		return 0;
	}

	/* Damaging commands. */
	{
		const char *model = cmd;
		uint64_t k, P, kbytes = 0, off = 0;
		uint8_t mask = 1;

		if (!strcmp(cmd, "random")) {
			static const char *models[] = { "cut", "tear", "flip" };

			if (argc != 4)
				die("%s", "random IMAGE SEED");
			rng_state = num(argv[3]) * 0x9e3779b97f4a7c15ull + 1;
			for (int i = 0; i < 4; i++)
				rnd();
			if (c.n == 0)
				die("%s", "no buffers to damage");
			model = models[rnd_below(3)];
			k = rnd_below(c.n);
			if (!strcmp(model, "tear"))
				kbytes = 512 * rnd_below(c.v[k].span / 512);
			if (!strcmp(model, "flip")) {
				/* mostly inside the CRC-covered bytes, sometimes
				 * the padding (which must not matter) */
				uint64_t covered = sizeof(struct br_buf_header) + c.v[k].len;

				off = rnd_below(4) ? rnd_below(covered) : rnd_below(c.v[k].span);
				mask = (uint8_t)(1u << rnd_below(8));
			}
		} else {
			if (argc < 4)
				die("%s", "missing K");
			k = num(argv[3]);
			if (!strcmp(cmd, "tear")) {
				if (argc != 5)
					die("%s", "tear IMAGE K BYTES");
				kbytes = num(argv[4]);
				if (kbytes % 512)
					die("%s", "BYTES must be a multiple of 512");
			} else if (!strcmp(cmd, "flip")) {
				if (argc < 5)
					die("%s", "flip IMAGE K OFF [MASK]");
				off = num(argv[4]);
				if (argc > 5)
					mask = (uint8_t)num(argv[5]);
				if (!mask)
					die("%s", "MASK must not be 0");
			} else if (strcmp(cmd, "cut") && strcmp(cmd, "hole")) {
				die("unknown command %s", cmd);
			}
			if (k >= c.n)
				die("%s", "K is past the last valid buffer");
		}

		const struct chain_buf *b = &c.v[k];
		uint64_t covered = sizeof(struct br_buf_header) + b->len;

		/* P: the first address replay must not take; Pc: the address
		 * right after the last buffer it keeps (they differ when the
		 * buffer at P was reached through next_seg) */
		uint64_t Pc = k ? c.v[k - 1].addr + c.v[k - 1].span : c.slot.roll_addr;

		if (!strcmp(model, "cut")) {
			for (size_t i = k; i < c.n; i++)
				zero_range(fd, c.v[i].addr, c.v[i].span);
			P = b->addr;
		} else if (!strcmp(model, "tear")) {
			if (kbytes > b->span)
				die("%s", "BYTES is larger than the buffer");
			zero_range(fd, b->addr + kbytes, b->span - kbytes);
			for (size_t i = k + 1; i < c.n; i++)
				zero_range(fd, c.v[i].addr, c.v[i].span);
			if (kbytes >= covered) {
				P = k + 1 < c.n ? c.v[k + 1].addr : c.end;
				Pc = b->addr + b->span;
			} else {
				P = b->addr;
			}
		} else if (!strcmp(model, "flip")) {
			if (off >= b->span)
				die("%s", "OFF is outside the buffer");
			flip_byte(fd, b->addr + off, mask);
			if (off >= covered) {
				P = c.end;
				Pc = c.end;
			} else {
				P = b->addr;
			}
		} else { /* hole */
			zero_range(fd, b->addr, b->span);
			P = b->addr;
		}
		if (fdatasync(fd))
			die("fdatasync: %s", strerror(errno));
		printf("P=%" PRIu64 " Pc=%" PRIu64 " K=%" PRIu64 " model=%s bytes=%" PRIu64 " off=%" PRIu64
		       " mask=0x%02x buffers=%zu old_end=%" PRIu64 "\n",
		       P, Pc, k, model, kbytes, off, mask, c.n, c.end);
	}
	chain_free(&c);
	close(fd);
	return 0;
}
