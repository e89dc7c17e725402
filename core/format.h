/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bringfs on-disk format: every on-disk struct and constant, nothing else.
 *
 * All multi-byte fields are little-endian and fixed width; structs carry
 * explicit padding (never `packed`), byte offsets in the margin and a
 * static_assert on their size.  Every CRC is CRC32C (Castagnoli) computed
 * over every byte after the checksum field, seeded with ~0 and finalised
 * with ~ (the iSCSI convention, as ISA-L's crc32_iscsi and the SSE4.2
 * instruction compute it).
 *
 * Device layout (byte offsets, B = BR_BLOCK_SIZE):
 *
 *   0        primary superblock            (one block)
 *   B        checkpoint slot A             (one block)
 *   2B       checkpoint slot B             (one block)
 *   ...      reserved up to the end of segment 0
 *   seg 1..  the log: flushed ring buffers, each starting with a
 *            struct br_buf_header, back to back inside a segment
 *   end - B  backup superblock             (last whole block)
 *
 * The log is a sequence of buffers.  A buffer occupies `span` bytes on disk
 * (a multiple of BR_BLOCK_SIZE); its header is followed by `len` bytes of
 * records; the rest of the span up to the next block is zero padding.
 */
#ifndef BR_FORMAT_H
#define BR_FORMAT_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define BR_BLOCK_SIZE 4096u

/* Little-endian wrappers: a distinct type so a raw load is a compile error. */
typedef struct { uint16_t v; } br_le16;
typedef struct { uint32_t v; } br_le32;
typedef struct { uint64_t v; } br_le64;

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bringfs: big-endian hosts need byte swaps in br_le*_get/put"
#endif

static inline uint16_t br_le16_get(br_le16 x) { return x.v; }
static inline uint32_t br_le32_get(br_le32 x) { return x.v; }
static inline uint64_t br_le64_get(br_le64 x) { return x.v; }
static inline br_le16 br_le16_put(uint16_t v) { return (br_le16){ v }; }
static inline br_le32 br_le32_put(uint32_t v) { return (br_le32){ v }; }
static inline br_le64 br_le64_put(uint64_t v) { return (br_le64){ v }; }

/* ------------------------------------------------------------------ */
/* Log buffers                                                          */
/* ------------------------------------------------------------------ */

#define BR_BUF_MAGIC 0x46554242u /* "BBUF" */

/*
 * Header at the start of every flushed ring buffer.  `seq` is the ring
 * generation of the buffer: strictly increasing in log order, so recovery
 * can tell a stale buffer (lower seq, left from an earlier pass over the
 * segment) from the next one.  `fsid` ties the buffer to one mkfs run, so a
 * buffer left by an earlier format of the same device is never replayed.
 *
 * `nonce` / `prev_nonce` chain the mounts: every mount picks a random
 * nonce; a buffer's prev_nonce is the nonce of the buffer before it in the
 * log (the same nonce within a mount; the last valid buffer's nonce for
 * the first buffer of a mount; 0 for the first buffer after mkfs).  In
 * tail-localised mode a crash can leave generation g missing and g+1 on
 * disk; the next mount rewrites g at the same address, and without the
 * chain the stale g+1 behind it (right seq, right place, valid CRC) would
 * be replayed although nobody was ever promised it.  Recovery follows a
 * buffer only if its prev_nonce equals the nonce of the one before.
 */
struct br_buf_header {
/*00*/	br_le32 crc;	/* crc32c of bytes [4, sizeof header + len) */
	br_le32 magic;	/* BR_BUF_MAGIC */
/*08*/	br_le64 seq;	/* ring generation, strictly increasing */
/*10*/	br_le32 len;	/* record bytes after this header */
	br_le32 span;	/* bytes on disk, header + len rounded up to a block */
/*18*/	br_le64 fsid;	/* first 8 bytes of the superblock UUID */
/*20*/	br_le32 nonce;	/* random, chosen by the mount that wrote this */
	br_le32 prev_nonce; /* nonce of the previous buffer in the log */
};
static_assert(sizeof(struct br_buf_header) == 40, "on-disk ABI");

/*
 * Every record in a buffer starts with this header.  Records are laid out
 * back to back, each padded to BR_REC_ALIGN bytes so fields stay aligned;
 * `len` counts the header and the body but not the padding.
 */
#define BR_REC_ALIGN 8u

struct br_rec_header {
/*00*/	br_le16 type;	/* enum br_rec_type */
	br_le16 flags;	/* per type; 0 unless stated */
	br_le32 len;	/* header + body bytes, without padding */
/*08*/	br_le64 ino;	/* inode the record is about (0: none) */
};
static_assert(sizeof(struct br_rec_header) == 16, "on-disk ABI");

enum br_rec_type {
	BR_REC_PAD = 0,		/* filler, skipped by recovery */
	BR_REC_DATA = 1,	/* struct br_rec_data + bytes */
	/* metadata record types are numbered from 16 */
};

/* A data record: `len - sizeof(rec_header) - 8` bytes of file data follow. */
struct br_rec_data {
/*00*/	struct br_rec_header h;	/* type BR_REC_DATA */
/*10*/	br_le64 off;		/* file offset of the first byte */
};
static_assert(sizeof(struct br_rec_data) == 24, "on-disk ABI");

static inline uint32_t br_rec_padded(uint32_t len)
{
	return (len + BR_REC_ALIGN - 1) & ~(BR_REC_ALIGN - 1);
}

#endif /* BR_FORMAT_H */
