/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The reference for tests/bench/wa-bench.sh: Sprite LFS's cleaner
 * (Rosenblum & Ousterhout, "The Design and Implementation of a
 * Log-Structured File System", 1992, section 3) simulated on the same
 * geometry and workload as the bringfs run it is printed next to.
 *
 *   lfs_model SEGMENTS BLOCKS_PER_SEGMENT UTIL_PCT uniform|hotcold
 *             [greedy|cost-benefit|sqrt|rate] [OVERWRITES_PER_BLOCK]
 *
 * The log holds SEGMENTS segments of BLOCKS_PER_SEGMENT 4 KiB blocks;
 * UTIL_PCT of them hold live blocks, written in order first (the fill),
 * then overwritten at random, one block at a time, uniformly or hot/cold
 * (90 % of the writes to the first 10 % of the blocks, as fio's
 * zoned:90/10:10/90).  When fewer than two segments are free the cleaner
 * runs until three are (one for the victims' live blocks to go to): the
 * best victim by the policy, its live blocks
 * copied to the cleaner's own open segment (moved data does not mix with
 * fresh writes, as in bringfs), the victim freed.  Sprite's cost-benefit
 * score is (1-u)*age/(1+u), age = clock - the newest write in the segment
 * (a moved block keeps its age).  For comparison with bringfs's own
 * policies: sqrt, (1-u)*sqrt(age)/(1+u) (its score until 2026-11), and
 * rate, (1-u)/(1+u) * (t / -ln u)^0.35 with t = clock - when the segment
 * was last written (core/cleaner.c, pick).  Nothing else takes space: no reserve, no
 * metadata, no checkpoints, so this is the policy's own write
 * amplification, a floor for a real implementation of it.
 *
 * Prints: model=sprite policy=P util=U pattern=X wa=W
 * with WA = (user blocks + moved blocks) / user blocks over the overwrite
 * phase (Sprite's "write cost" also counts reading the victims: 2*WA
 * for whole-segment reads).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../rng.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	return br_xorshift64(&rng);
}

struct model {
	uint32_t nseg, spb;
	int32_t *owner;		/* nseg * spb: block in the slot, -1 none */
	int64_t *loc;		/* block -> slot, -1 none */
	uint32_t *live;		/* per segment */
	uint64_t *age;		/* per segment: newest write */
	uint64_t *wrote;	/* per segment: clock when last written */
	uint32_t *freel;	/* free segments (a stack) */
	uint32_t nfree;
	int64_t head[2];	/* open segment: 0 users, 1 cleaner; -1 none */
	uint32_t off[2];
	uint64_t clock, moved;
	enum { GREEDY, SPRITE, SQRT, RATE } policy;
};

static void put(struct model *m, int h, int32_t b, uint64_t age)
{
	uint32_t s;
	int64_t slot;

	if (m->head[h] < 0 || m->off[h] == m->spb) {
		if (!m->nfree) {
			fprintf(stderr, "lfs_model: out of segments\n");
			exit(1);
		}
		m->head[h] = m->freel[--m->nfree];
		m->off[h] = 0;
		m->age[m->head[h]] = 0;
	}
	s = (uint32_t)m->head[h];
	if (m->loc[b] >= 0) {
		m->live[m->loc[b] / m->spb]--;
		m->owner[m->loc[b]] = -1;
	}
	slot = (int64_t)s * m->spb + m->off[h]++;
	m->owner[slot] = b;
	m->loc[b] = slot;
	m->live[s]++;
	m->wrote[s] = m->clock;
	if (age > m->age[s])
		m->age[s] = age;
}

static void clean_one(struct model *m)
{
	double best = -1;
	int64_t v = -1;

	for (uint32_t s = 0; s < m->nseg; s++) {
		double u = (double)m->live[s] / m->spb, score;
		double age = (double)(m->clock - m->age[s] + 1);
		double t = (double)(m->clock - m->wrote[s] + 1);

		if (s == m->head[0] || s == m->head[1] || !m->age[s])
			continue;	/* open, or free (age 0) */
		if (m->policy == GREEDY)
			score = 1 - u;
		else if (m->policy == SPRITE)
			score = (1 - u) * age / (1 + u);
		else if (m->policy == SQRT)
			score = (1 - u) * sqrt(age) / (1 + u);
		else
			score = (1 - u) / (1 + u) *
				pow(t / (u > 0 ? -log(u) : 1e9), 0.35);
		if (score > best) {
			best = score;
			v = s;
		}
	}
	if (v < 0) {
		fprintf(stderr, "lfs_model: nothing to clean\n");
		exit(1);
	}
	for (uint32_t i = 0; i < m->spb; i++) {
		int32_t b = m->owner[(int64_t)v * m->spb + i];

		if (b >= 0) {
			put(m, 1, b, m->age[v]);
			m->moved++;
		}
	}
	m->age[v] = 0;
	m->freel[m->nfree++] = (uint32_t)v;
}

int main(int argc, char **argv)
{
	struct model m = { 0 };
	uint64_t nblk, user = 0, writes;
	unsigned util;
	int hotcold;

	if (argc < 5) {
		fprintf(stderr, "usage: lfs_model SEGMENTS BLOCKS_PER_SEGMENT "
			"UTIL_PCT uniform|hotcold [greedy|cost-benefit] "
			"[OVERWRITES_PER_BLOCK]\n");
		return 2;
	}
	m.nseg = (uint32_t)strtoul(argv[1], NULL, 0);
	m.spb = (uint32_t)strtoul(argv[2], NULL, 0);
	util = (unsigned)strtoul(argv[3], NULL, 0);
	hotcold = !strcmp(argv[4], "hotcold");
	m.policy = argc < 6 || !strcmp(argv[5], "cost-benefit") ? SPRITE :
		   !strcmp(argv[5], "greedy") ? GREEDY :
		   !strcmp(argv[5], "sqrt") ? SQRT :
		   !strcmp(argv[5], "rate") ? RATE : -1;
	writes = argc > 6 ? strtoull(argv[6], NULL, 0) : 2;
	if ((int)m.policy < 0) {
		fprintf(stderr, "lfs_model: unknown policy %s\n", argv[5]);
		return 2;
	}
	if (m.nseg < 8 || !m.spb || !util || util > 95) {
		fprintf(stderr, "lfs_model: need >= 8 segments, blocks, "
			"util 1..95\n");
		return 2;
	}
	nblk = (uint64_t)m.nseg * m.spb * util / 100;
	m.owner = malloc((size_t)m.nseg * m.spb * sizeof(*m.owner));
	m.loc = malloc(nblk * sizeof(*m.loc));
	m.live = calloc(m.nseg, sizeof(*m.live));
	m.age = calloc(m.nseg, sizeof(*m.age));
	m.wrote = calloc(m.nseg, sizeof(*m.wrote));
	m.freel = malloc(m.nseg * sizeof(*m.freel));
	if (!m.owner || !m.loc || !m.live || !m.age || !m.wrote || !m.freel)
		return 1;
	memset(m.owner, 0xff, (size_t)m.nseg * m.spb * sizeof(*m.owner));
	memset(m.loc, 0xff, nblk * sizeof(*m.loc));
	for (uint32_t s = 0; s < m.nseg; s++)
		m.freel[m.nfree++] = m.nseg - 1 - s;
	m.head[0] = m.head[1] = -1;
	for (uint64_t b = 0; b < nblk; b++)
		put(&m, 0, (int32_t)b, ++m.clock);
	m.moved = 0;
	for (uint64_t i = 0; i < writes * m.nseg * m.spb; i++) {
		uint64_t b;

		if (m.nfree < 2)
			while (m.nfree < 3)
				clean_one(&m);
		if (hotcold && rnd() % 10 < 9)
			b = rnd() % (nblk / 10);
		else if (hotcold)
			b = nblk / 10 + rnd() % (nblk - nblk / 10);
		else
			b = rnd() % nblk;
		put(&m, 0, (int32_t)b, ++m.clock);
		user++;
	}
	printf("model=sprite policy=%s util=%u pattern=%s wa=%.2f\n",
	       m.policy == GREEDY ? "greedy" : m.policy == SPRITE ?
	       "cost-benefit" : m.policy == SQRT ? "sqrt" : "rate", util,
	       hotcold ? "hotcold" : "uniform",
	       (double)(user + m.moved) / (double)user);
	free(m.owner);
	free(m.loc);
	free(m.live);
	free(m.age);
	free(m.wrote);
	free(m.freel);
	return 0;
}
