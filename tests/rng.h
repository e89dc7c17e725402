/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xorshift64 (Marsaglia): a fast deterministic generator for tests and
 * benchmark models, the same sequence for the same seed on every run.
 * Not for anything that must be unpredictable.  *state must not be 0.
 */
#ifndef BR_TEST_RNG_H
#define BR_TEST_RNG_H

#include <stdint.h>

static inline uint64_t br_xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

#endif /* BR_TEST_RNG_H */
