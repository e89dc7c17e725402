/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "crc32c.h"

#include <isa-l/crc.h>

uint32_t br_crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* crc32_iscsi takes and returns the raw register; ~ on both sides
	 * gives the chainable, standard CRC32C value. */
	while (len > 0) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = ~crc32_iscsi((unsigned char *)buf, n, ~crc);
		buf = (const unsigned char *)buf + n;
		len -= (size_t)n;
	}
	return crc;
}
