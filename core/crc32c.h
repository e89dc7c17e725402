/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * CRC32C (Castagnoli), the iSCSI convention: start from 0, the function
 * applies the ~ on entry and exit, so br_crc32c(br_crc32c(0, a), b) equals
 * br_crc32c(0, a || b).  Backed by ISA-L's crc32_iscsi (SSE4.2 / PCLMUL /
 * AVX-512 dispatch at run time, portable fallback inside ISA-L).
 */
#ifndef BR_CRC32C_H
#define BR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t br_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* BR_CRC32C_H */
