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
 *   logcut random IMAGE SEED   one of cut/tear/flip at a random buffer
 *                              after the slot's checkpoint blob (what a
 *                              power cut can reach), chosen by SEED; exit
 *                              3 when there is none
 *   logcut ckpt IMAGE SEED MODE
 *                              power cut around the newest checkpoint N
 *                              (both slots must be valid; O = the older):
 *                              preslot   crash after N's CUT record but
 *                                        before its slot write: slot N
 *                                        zeroed, the chain from O cut or
 *                                        torn at a buffer after N's cut
 *                                        and at most one past N's blob
 *                              postslot  slot N kept, its chain cut or torn
 *                                        at a random buffer (inside N's
 *                                        blob only if O's chain reaches
 *                                        that far: then mount falls back)
 *                              tornslot  slot N garbled (bit flip) or zeroed
 *                                        and the chain from O cut or torn
 *                                        after N's blob
 *                              any       one of the three, by SEED
 *                              exit 3 (and a reason) when the image does not
 *                              allow MODE; otherwise also prints expect_gen
 *                              (the checkpoint generation mount must load,
 *                              0: a slot without a checkpoint)
 *   logcut peek IMAGE ADDR SEQ PREV_NONCE
 *                              is there a buffer at ADDR that is valid in
 *                              itself (magic, fsid, CRC) and carries SEQ?
 *                              exit 0 and "match nonce-ok|nonce-bad",
 *                              else exit 3
 *
 * Damaging commands print "P=<addr> Pc=<addr> S=<seq> K=<k> model=<what> ...":
 * replay must stop before the buffer at P, i.e. keep exactly the buffers
 * before it; Pc is the end of the last kept buffer (differs from P when the
 * buffer at P was reached through next_seg: either is a correct place for
 * the next mount to continue); S is the seq of the first buffer replay must
 * not take (every buffer with a lower seq on the chain is kept: compare
 * kill_torture's E with S, not addresses, as segments are reused).  They refuse (exit 2) to touch an image whose flock is held
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

/* Are the bytes [off, off + len) all zero already? */
static bool is_zero(int fd, uint64_t off, uint64_t len)
{
	uint8_t b[65536];

	while (len) {
		size_t n = len < sizeof(b) ? (size_t)len : sizeof(b);

		if (pread(fd, b, n, (off_t)off) != (ssize_t)n)
			die("%s", "read for the tear check failed");
		for (size_t i = 0; i < n; i++)
			if (b[i])
				return false;
		off += n;
		len -= n;
	}
	return true;
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


/* Apply `model` (cut, tear, flip, hole) at buffer k of the walked chain c;
 * *P, *Pc, *S as the header says. */
static void damage(int fd, struct chain *c, uint64_t k, const char *model,
		   uint64_t kbytes, uint64_t off, uint8_t mask, uint64_t *Pp,
		   uint64_t *Pcp, uint64_t *Sp)
{
	const struct chain_buf *b = &c->v[k];
	uint64_t covered = sizeof(struct br_buf_header) + b->len;
	/* P: the first address replay must not take; Pc: the address right
	 * after the last buffer it keeps (they differ when the buffer at P
	 * was reached through next_seg); S: the seq of the first buffer
	 * replay must not take */
	uint64_t P = b->addr, S = b->seq;
	uint64_t Pc = k ? c->v[k - 1].addr + c->v[k - 1].span : c->slot.roll_addr;

	if (!strcmp(model, "cut")) {
		for (size_t i = k; i < c->n; i++)
			zero_range(fd, c->v[i].addr, c->v[i].span);
	} else if (!strcmp(model, "tear")) {
		bool intact;

		if (kbytes > b->span)
			die("%s", "BYTES is larger than the buffer");
		/* a tear that only zeroes bytes that were zero already (the
		 * padding, or zeros in the data) leaves the buffer valid */
		intact = kbytes >= covered ||
			 is_zero(fd, b->addr + kbytes, covered - kbytes);
		zero_range(fd, b->addr + kbytes, b->span - kbytes);
		for (size_t i = k + 1; i < c->n; i++)
			zero_range(fd, c->v[i].addr, c->v[i].span);
		if (intact) {		/* the buffer itself survived */
			P = k + 1 < c->n ? c->v[k + 1].addr : c->end;
			Pc = b->addr + b->span;
			S = b->seq + 1;
		}
	} else if (!strcmp(model, "flip")) {
		if (off >= b->span)
			die("%s", "OFF is outside the buffer");
		flip_byte(fd, b->addr + off, mask);
		if (off >= covered) {	/* padding: nothing lost */
			P = c->end;
			Pc = c->end;
			S = c->next_seq;
		}
	} else { /* hole */
		zero_range(fd, b->addr, b->span);
	}
	*Pp = P;
	*Pcp = Pc;
	*Sp = S;
}

/* Index of the buffer holding the last CKPT_DATA piece of generation gen in
 * chain c (from its start), or -1.  Reads the buffers' records. */
static long blob_end(int fd, const struct chain *c, uint64_t gen)
{
	uint8_t *buf = malloc(BR_BUF_SIZE_MAX);
	uint64_t npieces = UINT64_MAX, seen = 0;
	long found = -1;

	if (!buf)
		die("%s", "out of memory");
	for (size_t i = 0; i < c->n && found < 0; i++) {
		const struct chain_buf *x = &c->v[i];

		if (pread(fd, buf, x->span, (off_t)x->addr) != (ssize_t)x->span)
			die("pread: %s", strerror(errno));
		for (uint32_t o = 0; o + sizeof(struct br_rec_header) <= x->len;) {
			const struct br_rec_header *r =
				(const void *)(buf + sizeof(struct br_buf_header) + o);
			uint32_t rl = br_le32_get(r->len);
			uint16_t t = br_le16_get(r->type);

			if (rl < sizeof(*r))
				break;	/* the walk checked the framing */
			if (t == BR_REC_CKPT_HEAD && rl >= sizeof(struct br_rec_ckpt_head) &&
			    br_le64_get(((const struct br_rec_ckpt_head *)r)->gen) == gen)
				npieces = br_le32_get(((const struct br_rec_ckpt_head *)r)->npieces);
			if (t == BR_REC_CKPT_DATA && rl >= sizeof(struct br_rec_ckpt_data) &&
			    br_le64_get(((const struct br_rec_ckpt_data *)r)->gen) == gen)
				seen++;
			o += br_rec_padded(rl);
		}
		if (npieces != UINT64_MAX && seen >= npieces)
			found = (long)i;
	}
	free(buf);
	return found;
}

static int na(const char *why, const char *mode)
{
	printf("n/a mode=%s: %s\n", mode, why);
	return 3;
}

static int ckpt_cmd(int fd, const char *image, uint64_t seed, const char *mode)
{
	static const char *modes[] = { "preslot", "postslot", "tornslot" };
	struct chain cn, co, *c;
	struct br_slot s0, s1, N, O;
	char why[200];
	uint64_t k, P, Pc, S, kbytes = 0, lo, hi, expect;
	long bn, r = -1, bo = -1;
	int err;
	const char *dmg;
	uint8_t mask = 1;

	(void)image;
	rng_state = seed * 0x9e3779b97f4a7c15ull + 3;
	for (int i = 0; i < 4; i++)
		rnd();
	if (!strcmp(mode, "any"))
		mode = modes[rnd_below(3)];
	err = chain_open_slot(fd, &cn, 0, why, sizeof(why));	/* for sb */
	if (err)
		die("%s", why);
	if (chain_read_slot(fd, &cn.sb, 0, &s0) || chain_read_slot(fd, &cn.sb, 1, &s1))
		return na("both checkpoint slots must be valid", mode);
	N = s0.seq > s1.seq ? s0 : s1;
	O = s0.seq > s1.seq ? s1 : s0;
	if (!N.ckpt_addr)
		return na("the newest slot holds no checkpoint", mode);
	chain_free(&cn);
	if (chain_open_slot(fd, &cn, (int)N.which, why, sizeof(why)) ||
	    chain_open_slot(fd, &co, (int)O.which, why, sizeof(why)))
		die("%s", why);
	if (chain_walk(fd, &cn, true) < 0 || chain_walk(fd, &co, true) < 0)
		die("%s", "walk failed");
	bn = blob_end(fd, &cn, N.seq);
	if (bn < 0)
		return na("the newest checkpoint's blob is not on its chain", mode);
	/* where N's roll point and blob end lie on O's chain */
	for (size_t i = 0; i < co.n; i++)
		if (co.v[i].seq == N.roll_seq && co.v[i].addr == N.roll_addr) {
			r = (long)i;
			break;
		}
	if (r >= 0 && (size_t)(r + bn) < co.n && co.v[r + bn].seq == cn.v[bn].seq)
		bo = r + bn;
	if (!strcmp(mode, "postslot")) {
		c = &cn;
		/* inside the blob (mount must fall back) only if O's chain
		 * runs through the kept buffers */
		lo = bo >= 0 ? 0 : (uint64_t)bn + 1;
		hi = cn.n;
	} else {
		if (bo < 0)
			return na("the older slot's chain does not reach the newest checkpoint (segments reused)", mode);
		c = &co;
		if (!strcmp(mode, "preslot")) {
			lo = (uint64_t)r + 1;
			hi = (uint64_t)bo + 2;
		} else {
			lo = (uint64_t)bo + 1;
			hi = co.n;
		}
		if (hi > co.n)
			hi = co.n;
	}
	if (lo >= hi)
		return na("no buffer to cut in the range the mode needs", mode);
	k = lo + rnd_below(hi - lo);
	dmg = rnd_below(3) ? "cut" : "tear";
	if (!strcmp(dmg, "tear"))
		kbytes = 512 * rnd_below(c->v[k].span / 512);
	/* the slot first (the walks are done), then the log */
	if (!strcmp(mode, "preslot") || (!strcmp(mode, "tornslot") && rnd_below(2))) {
		zero_range(fd, BR_SLOT_OFF(N.which), BR_BLOCK_SIZE);
	} else if (!strcmp(mode, "tornslot")) {
		mask = (uint8_t)(1u << rnd_below(8));
		flip_byte(fd, BR_SLOT_OFF(N.which) + rnd_below(BR_SLOT_SIZE), mask);
	}
	damage(fd, c, k, dmg, kbytes, 0, 1, &P, &Pc, &S);
	if (fdatasync(fd))
		die("fdatasync: %s", strerror(errno));
	/* which checkpoint mount must load: N only if its slot is intact and
	 * its whole blob is before the cut */
	if (!strcmp(mode, "postslot") && S > cn.v[bn].seq)
		expect = N.seq;
	else
		expect = O.ckpt_addr ? O.seq : 0;
	printf("P=%" PRIu64 " Pc=%" PRIu64 " S=%" PRIu64 " K=%" PRIu64
	       " model=ckpt-%s-%s bytes=%" PRIu64 " slot_mask=0x%02x buffers=%zu expect_gen=%" PRIu64
	       " newest_gen=%" PRIu64 " older_gen=%" PRIu64 " blob_end=%ld cut_on_older=%ld\n",
	       P, Pc, S, k, mode, dmg, kbytes, mask, c->n, expect, N.seq, O.seq, bn, r);
	chain_free(&cn);
	chain_free(&co);
	return 0;
}


/* The walked chain, freed at exit (LeakSanitizer: the asan build runs
 * this tool too), whichever return or die() ends the run. */
static struct chain *walked;

static void free_walked(void)
{
	if (walked)
		chain_free(walked);
}

int main(int argc, char **argv)
{
	static struct chain c;
	const char *cmd, *image;
	char why[200];
	int fd, err;
	long got;
	bool mutate;

	if (argc < 3) {
		fprintf(stderr, "usage: logcut list|end|cut|tear|flip|hole|random|ckpt|peek IMAGE [args]\n");
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
	if (!strcmp(cmd, "ckpt")) {
		if (argc != 5)
			die("%s", "ckpt IMAGE SEED preslot|postslot|tornslot|any");
		return ckpt_cmd(fd, image, num(argv[3]), argv[4]);
	}
	err = chain_open(fd, &c, why, sizeof(why));
	if (err)
		die("%s", why);
	walked = &c;
	atexit(free_walked);
	got = chain_walk(fd, &c, true);
	if (got < 0)
		die("walk: %s", strerror((int)-got));

	if (!strcmp(cmd, "list")) {
		for (size_t i = 0; i < c.n; i++)
			printf("%zu addr=%" PRIu64 " seq=%" PRIu64 " span=%u len=%u nonce=%08x prev=%08x next_seg=%" PRIu64 "\n",
			       i, c.v[i].addr, c.v[i].seq, c.v[i].span, c.v[i].len,
			       c.v[i].nonce, c.v[i].prev_nonce, c.v[i].next_seg);
		printf("end=%" PRIu64 " buffers=%zu next_seq=%" PRIu64 " last_nonce=%08x log_start=%" PRIu64 " log_end=%" PRIu64
		       " slot=%u gen=%" PRIu64 " ckpt=%" PRIu64 " roll_seq=%" PRIu64 " stop=%s\n",
		       c.end, c.n, c.next_seq, c.nonce, c.sb.log_start, c.sb.log_end,
		       c.slot.which, c.slot.seq, c.slot.ckpt_addr, c.slot.roll_seq, c.stop);
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
			goto no_match;
		h = (const void *)b;
		span = br_le32_get(h->span);
		len = br_le32_get(h->len);
		if (br_le32_get(h->magic) != BR_BUF_MAGIC || br_le64_get(h->fsid) != c.fsid ||
		    br_le64_get(h->seq) != seq || !span || span > BR_BUF_SIZE_MAX ||
		    span % BR_BLOCK_SIZE || len > span - sizeof(*h))
			goto no_match;
		if (pread(fd, b, span, (off_t)addr) != (ssize_t)span)
			goto no_match;
		if (br_crc32c(0, b + 4, sizeof(*h) - 4 + len) != br_le32_get(h->crc))
			goto no_match;
		printf("match %s\n", br_le32_get(h->prev_nonce) == prev ? "nonce-ok" : "nonce-bad");
		free(b);
		return 0;
no_match:
		free(b);
		return 3;
	}

	/* Damaging commands. */
	{
		const char *model = cmd;
		uint64_t k, P, Pc, S, kbytes = 0, off = 0;
		long lo;
		uint8_t mask = 1;

		if (!strcmp(cmd, "random")) {
			static const char *models[] = { "cut", "tear", "flip" };

			if (argc != 4)
				die("%s", "random IMAGE SEED");
			rng_state = num(argv[3]) * 0x9e3779b97f4a7c15ull + 1;
			for (int i = 0; i < 4; i++)
				rnd();
			/* The slot of the chain's checkpoint was written only
			 * once its blob was durable: a power cut cannot reach
			 * the buffers up to the blob's end, so damage after
			 * them only. */
			lo = c.slot.ckpt_addr ? blob_end(fd, &c, c.slot.seq) + 1 : 0;
			if ((size_t)lo >= c.n) {
				printf("n/a: no buffer after the checkpoint's blob (%zu buffers)\n", c.n);
				return 3;
			}
			model = models[rnd_below(3)];
			k = (uint64_t)lo + rnd_below(c.n - (size_t)lo);
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

		damage(fd, &c, k, model, kbytes, off, mask, &P, &Pc, &S);
		if (fdatasync(fd))
			die("fdatasync: %s", strerror(errno));
		printf("P=%" PRIu64 " Pc=%" PRIu64 " S=%" PRIu64 " K=%" PRIu64 " model=%s bytes=%" PRIu64 " off=%" PRIu64
		       " mask=0x%02x buffers=%zu old_end=%" PRIu64 "\n",
		       P, Pc, S, k, model, kbytes, off, mask, c.n, c.end);
	}
	chain_free(&c);
	close(fd);
	return 0;
}
