/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An independent walker over the bringfs log (tests only): reads the
 * superblock and the newest checkpoint slot through core/super.h, then
 * follows the buffer chain from the slot's roll-forward point the way
 * format.h describes it (magic, fsid, seq + 1 per buffer, prev_nonce ==
 * nonce of the buffer before, span, and with `full` the CRC and record
 * framing; the successor at addr + span if a block is left in the segment,
 * else / otherwise at next_seg).  Written separately from core/replay.c on purpose: the crash
 * tests use it as the oracle for "where must replay stop".
 *
 * Walking is incremental: chain_walk() continues from where the previous
 * call stopped, so a workload can call it after every fsync on a live image
 * at the cost of the new buffers only.  A header-only walk (full = false)
 * may run past a buffer whose payload is still in flight; it is an upper
 * bound of the durable prefix, never below it (every buffer that completed
 * is found).
 */
#ifndef BR_TEST_CHAIN_H
#define BR_TEST_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "super.h"

struct chain_buf {
	uint64_t addr, seq;
	uint32_t span, len, nonce, prev_nonce;
	uint64_t next_seg;	/* where the log continues when the segment is full */
};

struct chain {
	struct br_super sb;
	struct br_slot slot;
	uint64_t fsid;
	struct chain_buf *v;	/* buffers found, in log order */
	size_t n, cap;
	uint64_t end;		/* address after the last buffer found (the
				 * roll-forward address before the first) */
	uint64_t next_seq;	/* seq the next buffer must carry */
	uint32_t nonce;		/* nonce of the last buffer (0: none yet) */
	char stop[160];		/* why the last walk stopped */
};

/* Read superblock + newest slot; 0 or a negative errno / BR_ERR_*, with a
 * reason in why. */
int chain_open(int fd, struct chain *c, char *why, size_t why_len);

/* The same, from slot `which` (0 or 1) instead of the newest valid one;
 * -1: the newest. */
int chain_open_slot(int fd, struct chain *c, int which, char *why,
		    size_t why_len);

/* Read and decode one slot (BR_ERR_CORRUPT if it is not valid). */
int chain_read_slot(int fd, const struct br_super *sb, unsigned which,
		    struct br_slot *slot);

/* Continue the walk; returns the number of buffers added or -errno. */
long chain_walk(int fd, struct chain *c, bool full);

void chain_free(struct chain *c);

/* Is the buffer at b (span bytes, as read) valid by format.h, given the
 * expected seq / prev_nonce?  full: also CRC and record framing. */
bool chain_buf_ok(const struct chain *c, const uint8_t *b, uint64_t addr,
		  uint64_t seq, uint32_t prev_nonce, bool full, char *why,
		  size_t why_len);

#endif
