/*
 * overwrite: random O_DIRECT overwrites of a full file, every one whole,
 * then every block read back.
 *
 *   overwrite FILE SIZE BYTES
 *
 * FILE is created and written to SIZE bytes (rounded down to 4 KiB) in
 * 1 MiB pieces, then overwritten at BYTES worth of random 4 KiB blocks, one
 * pwrite each, as fio's randwrite with --direct=1 does.  Each write must
 * return exactly 4096: a filesystem with room for the file has no reason
 * to cut one short (through FUSE a short O_DIRECT write reaches the
 * program as EIO).  Each block holds its index and how many times it was
 * written, so the read-back checks every block is the last one written.
 *
 * Prints one line per failed check, and "N passed, N failed" at the end;
 * exit status 0 only when nothing failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../rng.h"

#define BLK 4096u
#define FILL (1u << 20)

static unsigned passed, failed;

static uint8_t base[BLK];	/* random bytes every block starts from */

/* Block b after its gen-th write: random bytes with its index and gen at
 * the start of every 512-byte sector (a sector from another block or
 * write differs there), cheap enough not to slow the writes down. */
static void fill_block(uint8_t *p, uint64_t b, uint32_t gen)
{
	memcpy(p, base, BLK);
	for (unsigned i = 0; i < BLK; i += 512) {
		memcpy(p + i, &b, 8);
		memcpy(p + i + 8, &gen, 4);
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = 0x2545f4914f6cdd1dull, nblk, writes;
	uint32_t *gen;
	uint8_t *buf, *want;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: overwrite FILE SIZE BYTES\n");
		return 2;
	}
	nblk = strtoull(argv[2], NULL, 0) / BLK;
	writes = strtoull(argv[3], NULL, 0) / BLK;
	if (!nblk) {
		fprintf(stderr, "overwrite: SIZE must be at least 4096\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	if (fd < 0) {
		fprintf(stderr, "overwrite: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < BLK; i += 8) {
		uint64_t v = br_xorshift64(&seed);

		memcpy(base + i, &v, 8);
	}
	gen = calloc(nblk, sizeof(*gen));
	if (!gen || posix_memalign((void **)&buf, BLK, FILL) ||
	    posix_memalign((void **)&want, BLK, BLK)) {
		fprintf(stderr, "overwrite: out of memory\n");
		return 1;
	}
	for (uint64_t b = 0; b < nblk; b += FILL / BLK) {
		uint64_t n = nblk - b < FILL / BLK ? nblk - b : FILL / BLK;
		ssize_t w;

		for (uint64_t i = 0; i < n; i++)
			fill_block(buf + i * BLK, b + i, 0);
		w = pwrite(fd, buf, n * BLK, (off_t)(b * BLK));
		if (w != (ssize_t)(n * BLK)) {
			printf("FAIL: fill at block %" PRIu64 ": %zd (%s)\n",
			       b, w, w < 0 ? strerror(errno) : "short");
			failed++;
			goto out;
		}
	}
	passed++;
	for (uint64_t i = 0; i < writes; i++) {
		uint64_t b = br_xorshift64(&seed) % nblk;
		ssize_t w;

		fill_block(buf, b, gen[b] + 1);
		w = pwrite(fd, buf, BLK, (off_t)(b * BLK));
		if (w != BLK) {
			printf("FAIL: write %" PRIu64 " of %" PRIu64 " (block %"
			       PRIu64 "): %zd (%s)\n", i, writes, b, w,
			       w < 0 ? strerror(errno) : "short");
			failed++;
			goto out;
		}
		gen[b]++;
	}
	passed++;
	if (fsync(fd)) {
		printf("FAIL: fsync: %s\n", strerror(errno));
		failed++;
	}
	for (uint64_t b = 0; b < nblk; b++) {
		if (pread(fd, buf, BLK, (off_t)(b * BLK)) != BLK) {
			printf("FAIL: read block %" PRIu64 ": %s\n", b,
			       strerror(errno));
			failed++;
			goto out;
		}
		fill_block(want, b, gen[b]);
		if (memcmp(buf, want, BLK)) {
			uint64_t hb;
			uint32_t hg;

			memcpy(&hb, buf, 8);
			memcpy(&hg, buf + 8, 4);
			printf("FAIL: block %" PRIu64 " (write %u) holds block %"
			       PRIu64 " write %u\n", b, gen[b], hb, hg);
			failed++;
			goto out;
		}
	}
	passed++;
out:
	close(fd);
	free(gen);
	free(buf);
	free(want);
	printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
