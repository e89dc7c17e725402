/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: superblock and checkpoint slot decoders (core/super.h).
 *
 * Input: bytes 0..511 are a superblock, bytes 512..575 a slot (missing
 * bytes are zero).  The LAST input byte, when the input is longer than
 * 576 bytes, is a control byte: bit 0 recomputes the superblock CRC,
 * bit 1 the slot CRC, so the fuzzer gets past the checksums and reaches
 * the field checks.
 *
 * Properties (abort on violation):
 *   - decode returns 0, BR_ERR_CORRUPT or BR_ERR_UNSUPPORTED, nothing else;
 *   - what decodes (0) passes br_super_check and re-encodes to exactly the
 *     input bytes (decode accepts only the canonical encoding);
 *   - a slot that decodes re-encodes to exactly its 64 input bytes;
 *   - br_super_read / br_slot_read_newest on a 64 MiB sparse memfd holding
 *     the bytes (primary, backup, both slots) never crash and return only
 *     the documented errors; a superblock they return passes the check.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc32c.h"
#include "super.h"

#define DEV (64ull << 20)

static struct br_super ref;	/* a valid superblock for slot decoding */
static int mfd = -1;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_super: property violated: %s\n", what);
	abort();
}

static void init(void)
{
	if (mfd >= 0)
		return;
	if (br_super_geometry(DEV, 1ull << 20, 64u << 10, &ref, NULL, 0))
		die("geometry of the reference superblock");
	for (int i = 0; i < 16; i++)
		ref.uuid[i] = (uint8_t)(0x11 * (i + 1));
	mfd = memfd_create("fuzz_super", 0);
	if (mfd < 0)
		die("memfd_create");
}

static void put_crc(uint8_t *p, size_t len)
{
	uint32_t c = br_crc32c(0, p + 4, len - 4);

	memcpy(p, &c, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sbb[BR_SUPER_SIZE] = { 0 }, slb[BR_SLOT_SIZE] = { 0 };
	uint8_t out[BR_SUPER_SIZE];
	struct br_super sb, sb2;
	struct br_slot sl;
	int e;

	init();
	memcpy(sbb, data, size < sizeof(sbb) ? size : sizeof(sbb));
	if (size > sizeof(sbb))
		memcpy(slb, data + sizeof(sbb),
		       size - sizeof(sbb) < sizeof(slb) ? size - sizeof(sbb) : sizeof(slb));
	if (size > sizeof(sbb) + sizeof(slb)) {
		uint8_t ctl = data[size - 1];

		if (ctl & 1)
			put_crc(sbb, sizeof(sbb));
		if (ctl & 2)
			put_crc(slb, sizeof(slb));
	}

	e = br_super_decode(sbb, &sb);
	if (e != 0 && e != BR_ERR_CORRUPT && e != BR_ERR_UNSUPPORTED)
		die("br_super_decode returned an undocumented error");
	if (e == 0) {
		if (br_super_check(&sb, NULL, 0))
			die("decoded superblock fails br_super_check");
		if (br_super_encode(&sb, out))
			die("decoded superblock does not encode");
		if (memcmp(out, sbb, sizeof(out)))
			die("decode accepted a non-canonical superblock (re-encoding differs)");
		if (br_super_decode(out, &sb2) || memcmp(&sb, &sb2, sizeof(sb)))
			die("encode/decode round trip changed the superblock");
	}

	/* slot against the decoded superblock if any, else the reference */
	{
		const struct br_super *s = e == 0 ? &sb : &ref;
		uint8_t so[BR_SLOT_SIZE];

		e = br_slot_decode(s, slb, &sl);
		if (e != 0 && e != BR_ERR_CORRUPT)
			die("br_slot_decode returned an undocumented error");
		if (e == 0) {
			if (br_slot_encode(s, &sl, so))
				die("decoded slot does not encode");
			if (memcmp(so, slb, sizeof(so)))
				die("decode accepted a non-canonical slot");
		}
	}

	/* the device readers on a sparse 64 MiB memfd */
	{
		static _Alignas(4096) uint8_t blk[4096];
		uint64_t backup = br_super_backup_off(DEV);
		struct br_super rs;

		if (ftruncate(mfd, 0) || ftruncate(mfd, (off_t)DEV))
			die("ftruncate");
		memset(blk, 0, sizeof(blk));
		memcpy(blk, sbb, sizeof(sbb));
		if (pwrite(mfd, blk, sizeof(blk), 0) != sizeof(blk))
			die("pwrite");
		/* the backup: the same bytes, with one bit changed when the
		 * input asks for it (odd first byte), so either copy may win */
		if (size && (data[0] & 1))
			blk[size % sizeof(sbb)] ^= 0x80;
		if (pwrite(mfd, blk, sizeof(blk), (off_t)backup) != sizeof(blk))
			die("pwrite");
		memset(blk, 0, sizeof(blk));
		memcpy(blk, slb, sizeof(slb));
		if (pwrite(mfd, blk, sizeof(blk), BR_SLOT_OFF(0)) != sizeof(blk) ||
		    pwrite(mfd, blk, sizeof(blk), BR_SLOT_OFF(1)) != sizeof(blk))
			die("pwrite");
		e = br_super_read(mfd, &rs);
		if (e != 0 && e != BR_ERR_CORRUPT && e != BR_ERR_UNSUPPORTED)
			die("br_super_read returned an undocumented error");
		if (e == 0) {
			if (br_super_check(&rs, NULL, 0))
				die("br_super_read returned a superblock that fails the check");
			if (rs.dev_size > DEV)
				die("br_super_read accepted a superblock larger than the device");
			e = br_slot_read_newest(mfd, &rs, &sl);
			if (e != 0 && e != BR_ERR_CORRUPT)
				die("br_slot_read_newest returned an undocumented error");
			if (e == 0 && (sl.roll_addr < rs.log_start || sl.roll_addr >= rs.log_end ||
				       sl.roll_addr % BR_BLOCK_SIZE || sl.which > 1))
				die("br_slot_read_newest returned a slot outside the log");
		}
	}
	return 0;
}
