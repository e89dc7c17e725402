/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench-pick: the CPU a cleaning pass spends choosing its victims, for
 * logs of 510 segments (the 1 GiB wa-bench) up to 131072 (1 TiB of the
 * default 8 MiB segments), next to the way it was done until 2026-12
 * (every candidate sorted), same run, same candidates.
 *
 *   bench-pick [-r RUNS]
 *
 * The candidates are what a log 90 % full of random overwrites looks
 * like to the cleaner: live bytes uniform over 1/8..7/8 of the segment,
 * last written anywhere in the clock.  Each figure is the median of RUNS
 * (default 9) over fresh copies of the same candidates.
 *   score: br_clean_score for every candidate (both ways pay it)
 *   rank:  br_clean_rank of the best 64 (what a pass orders first)
 *   sort:  qsort of all of them (the reference)
 * Line: bench=pick segments=N score_us=.. rank_us=.. sort_us=..
 *       pick_us=score+rank ref_us=score+sort ratio=ref/pick
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleaner.h"
#include "../rng.h"

#define SEG (8ull << 20)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), by_double);
	return v[n / 2];
}

/* the order pick used before br_clean_rank: score down, then segment */
static int by_score(const void *a, const void *b)
{
	const struct br_clean_scored *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->seg < y->seg ? -1 : x->seg > y->seg;
}

int main(int argc, char **argv)
{
	const size_t sizes[] = { 510, 16384, 131072 };
	int runs = 9, opt;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt != 'r' || (runs = atoi(optarg)) < 1) {
			fprintf(stderr, "usage: bench-pick [-r RUNS]\n");
			return 2;
		}
	}
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t n = sizes[si];
		uint64_t *live = malloc(n * sizeof(*live));
		uint64_t *wrote = malloc(n * sizeof(*wrote));
		struct br_clean_scored *v = malloc(n * sizeof(*v));
		struct br_clean_scored *w = malloc(n * sizeof(*w));
		double *sc = malloc((size_t)runs * sizeof(double));
		double *rk = malloc((size_t)runs * sizeof(double));
		double *so = malloc((size_t)runs * sizeof(double));
		uint64_t rng = 0x2545f4914f6cdd1dull, clock = 1000000;
		double t0, s_us, r_us, q_us;

		if (!live || !wrote || !v || !w || !sc || !rk || !so) {
			fprintf(stderr, "bench-pick: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			live[i] = SEG / 8 + br_xorshift64(&rng) % (SEG * 3 / 4);
			wrote[i] = br_xorshift64(&rng) % clock;
		}
		for (int r = 0; r < runs; r++) {
			t0 = now_us();
			for (size_t i = 0; i < n; i++)
				v[i] = (struct br_clean_scored){
					.score = br_clean_score(live[i], SEG,
								clock, wrote[i]),
					.seg = i + 1, .live = live[i] };
			sc[r] = now_us() - t0;
			memcpy(w, v, n * sizeof(*v));
			t0 = now_us();
			(void)br_clean_rank(v, n, 64);
			rk[r] = now_us() - t0;
			t0 = now_us();
			qsort(w, n, sizeof(*w), by_score);
			so[r] = now_us() - t0;
			/* the same victims first, or the figures mean nothing */
			for (size_t i = 0; i < 64 && i < n; i++) {
				if (v[i].seg != w[i].seg) {
					fprintf(stderr, "bench-pick: rank and sort disagree at %zu\n", i);
					return 1;
				}
			}
		}
		s_us = median(sc, runs);
		r_us = median(rk, runs);
		q_us = median(so, runs);
		printf("bench=pick segments=%zu score_us=%.0f rank_us=%.0f sort_us=%.0f pick_us=%.0f ref_us=%.0f ratio=%.2f\n",
		       n, s_us, r_us, q_us, s_us + r_us, s_us + q_us,
		       (s_us + q_us) / (s_us + r_us));
		free(so);
		free(rk);
		free(sc);
		free(w);
		free(v);
		free(wrote);
		free(live);
	}
	return 0;
}
