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
 * Device layout (byte offsets; B = BR_BLOCK_SIZE = 4096, S = segment size,
 * n = segment count, D = device size):
 *
 *   0          primary superblock, struct br_super_block in the first
 *              BR_SUPER_SIZE bytes of the block, the rest zero
 *   B          checkpoint slot 0, struct br_ckpt_slot          (one block)
 *   2B         checkpoint slot 1, struct br_ckpt_slot          (one block)
 *   3B .. S    reserved, zero; segment 0 holds no log data
 *   S .. nS    the log: segments 1 .. n-1.  log_start = S, log_end = n*S.
 *              Flushed ring buffers, each starting with a struct
 *              br_buf_header, back to back inside a segment; a buffer never
 *              crosses a segment boundary.
 *   nS .. bk   unused tail (less than one segment)
 *   bk         backup superblock, bk = (D rounded down to B) - B, the last
 *              whole block of the device
 *
 * n is the largest count with n*S <= bk: the last segment never overlaps
 * the backup superblock.  Example, D = 1 GiB, S = 8 MiB: bk = 1 GiB - 4 KiB,
 * n = 127, log = [8 MiB, 1016 MiB), 126 log segments.
 *
 * Superblock rules that hold in every version, so an old reader can tell a
 * newer filesystem from a damaged one: the first 16 bytes are crc, version,
 * magic in that order; the CRC always covers bytes [4, BR_SUPER_SIZE);
 * new fields are carved from `reserved`, which older writers leave zero.
 * A reader refuses a version above its own and any incompat feature bit it
 * does not know; an unknown ro_compat bit allows a read-only mount only;
 * unknown compat bits are ignored (ext4's rules).
 *
 * Checkpoint slots are written alternately (the one not holding the newest
 * valid checkpoint is overwritten), so a torn slot write leaves the previous
 * checkpoint intact; the reader takes the valid slot with the highest seq.
 * mkfs writes slot 0 with seq 1, no checkpoint (ckpt_addr 0) and roll-forward
 * from (log_start, buffer seq 1), and zeroes slot 1 and the first block of
 * the log, so a filesystem always has at least one valid slot.
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
/*28*/	br_le64 next_seg; /* byte address of the segment the log continues
			   * in when this buffer's segment has no room for the
			   * next buffer; 0 = none (the log is full) */
};
static_assert(sizeof(struct br_buf_header) == 48, "on-disk ABI");

/*
 * Where the buffer after buffer X (at addr, span bytes, in the segment that
 * ends at seg_end) lies: at addr + span if that leaves at least one block
 * in the segment, or else at X.next_seg.  The writer decides with the same
 * rule plus the next buffer's span: a buffer that does not fit in the rest
 * of the segment goes to next_seg, so recovery tries addr + span first and
 * X.next_seg second; the seq and the nonce chain tell the real successor
 * from stale bytes.  Segments are chosen when the previous one is opened,
 * so next_seg is known to every buffer of a segment, and a cleaner may
 * hand out segments in any order.
 */

/*
 * Buffers outside the chain.  The cleaner writes the live data it moves
 * into a segment of its own (core/cleaner.h, "Second head"), as buffers
 * with the same header, holding BR_REC_DATA_VEC records (data records
 * before INCOMPAT_DATA_VEC), back to back from the segment's start, but
 * not linked into the chain: seq = BR_SEQ_OFF_CHAIN | n (n
 * strictly increasing), nonce = prev_nonce = 0, next_seg = 0.  Recovery
 * never follows one (the chain's seq never has bit 63 set); a RELOC record
 * in the chain (or a checkpoint) is what makes their data reachable (the
 * moved data is synced before any record points at it).  Walks of a
 * segment (cleaner, fsck) take them like any buffer.
 */
#define BR_SEQ_OFF_CHAIN (1ull << 63)

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
	BR_REC_DATA_VEC = 2,	/* br_rec_data_vec: the cleaner's copies,
				 * only outside the chain (needs
				 * BR_FEATURE_INCOMPAT_DATA_VEC) */
	/* metadata record types are numbered from 16 */
};

/* A data record: `len - sizeof(rec_header) - 8` bytes of file data follow. */
struct br_rec_data {
/*00*/	struct br_rec_header h;	/* type BR_REC_DATA */
/*10*/	br_le64 off;		/* file offset of the first byte */
};
static_assert(sizeof(struct br_rec_data) == 24, "on-disk ABI");

/*
 * Many pieces of h.ino's data in one record: what the cleaner writes into
 * its buffers outside the chain (below), never found in the chain.  A
 * br_rec_data per moved piece took 24 bytes a 4 KiB piece: at 90 % full
 * ~0.6 % of the device held by headers (~3 of 510 segments, each worth
 * ~2 % of the write amplification).  The pieces' bytes follow the struct
 * back to back, in entry order; then `elen` bytes of `count` entries fill
 * the record exactly (h.len).  An entry is two LEB128 varints (as in
 * BR_REC_RELOCS): zigzag(off - end), len (>= 1), where `end` is the
 * previous piece's off + len (0 before the first): at most 7 bytes a
 * 4 KiB piece of a 1 GiB file.  The bytes first, so that a writer
 * streams them and adds the entries at the end.  br_vec_ent_put and struct br_vec_it below are the codec.
 */
struct br_rec_data_vec {
/*00*/	struct br_rec_header h;	/* BR_REC_DATA_VEC */
/*10*/	br_le32 count;		/* pieces, >= 1 */
	br_le32 elen;		/* bytes of the entries, at the end */
};
static_assert(sizeof(struct br_rec_data_vec) == 24, "on-disk ABI");

#define BR_VEC_ENT_MAX 20u	/* bytes of one encoded entry, at most */

static inline uint32_t br_rec_padded(uint32_t len)
{
	return (len + BR_REC_ALIGN - 1) & ~(BR_REC_ALIGN - 1);
}

/* ------------------------------------------------------------------ */
/* Superblock and geometry                                              */
/* ------------------------------------------------------------------ */

#define BR_SUPER_MAGIC 0x215346474e495242ull /* bytes "BRINGFS!" */
#define BR_SUPER_SIZE 512u		/* on-disk struct; padded in its block */
#define BR_FORMAT_VERSION 1u		/* highest version this code reads */
#define BR_SUPER_OFF 0u			/* primary superblock */
#define BR_SLOT_OFF(which) ((uint64_t)(1u + (which)) * BR_BLOCK_SIZE)
#define BR_LABEL_MAX 63u		/* label bytes, without the NUL */

/*
 * Geometry limits, checked by mkfs and on every superblock read.
 *
 * Buffer size: one flushed ring buffer at most; the unit of a log write.
 * 64 KiB keeps the header + CRC overhead below 0.1 % and a write large
 * enough for O_DIRECT to reach device bandwidth; 64 MiB bounds the ring's
 * memory (nbuf * buf_size is allocated at mount).
 *
 * Segment size: the unit the cleaner reclaims.  A multiple of the buffer
 * size so buffers tile a segment exactly; at most 1 GiB so one segment's
 * live data can be moved through the ring in reasonable time.
 *
 * Device size: at least BR_DEV_SIZE_MIN and room for BR_LOG_SEGS_MIN log
 * segments.  With the defaults (8 MiB segments) 64 MiB leaves 6 log
 * segments (48 MiB): one being filled, one the cleaner writes into and a
 * few for it to choose from.  Below that a log-structured filesystem spends
 * its time cleaning.  At most BR_SEG_COUNT_MAX segments so a segment number
 * fits in 32 bits in the segment usage table.
 */
#define BR_BUF_SIZE_MIN (64u << 10)
#define BR_BUF_SIZE_MAX (64u << 20)
#define BR_BUF_SIZE_DEFAULT (1u << 20)
#define BR_SEG_SIZE_MAX (1ull << 30)
#define BR_SEG_SIZE_DEFAULT (8ull << 20)
#define BR_DEV_SIZE_MIN (64ull << 20)
#define BR_LOG_SEGS_MIN 4u
#define BR_SEG_COUNT_MAX (1ull << 32)

/*
 * Feature words.  The *_SUPP masks are what this code understands.  Define
 * a bit here with its meaning and add it to the matching mask when the
 * code supports it.
 *
 * INCOMPAT_RELOC: the log may hold BR_REC_RELOC records (the cleaner's
 * moves).  Code that does not know them would stop replay at the first
 * one (or, worse, a reader that skipped unknown records would map moved
 * data at its old address, in a segment reused since), so the bit is set
 * in both superblocks, durably, before the first RELOC record is written
 * (core/cleaner.c); mkfs leaves it clear.  The version stays 1: the bit
 * alone is what tells an older reader to refuse.
 */
#define BR_FEATURE_INCOMPAT_RELOC (1ull << 0)
/*
 * INCOMPAT_RELOCS: the log may hold BR_REC_RELOCS records (many moves in
 * one record).  Set with INCOMPAT_RELOC, the same way, before the first
 * one: code that knew only BR_REC_RELOC refuses the image instead of
 * failing its replay at the record.
 */
#define BR_FEATURE_INCOMPAT_RELOCS (1ull << 1)
/*
 * INCOMPAT_CKPT_PACKED: checkpoint blobs may be version 3 (extents
 * packed, below).  Set before the first one is written (core/checkpoint.c);
 * code that read only versions 1 and 2 refuses the image instead of
 * failing to load its checkpoint.
 */
#define BR_FEATURE_INCOMPAT_CKPT_PACKED (1ull << 2)

#define BR_FEATURE_COMPAT_SUPP 0ull	/* unknown: ignored */
#define BR_FEATURE_RO_COMPAT_SUPP 0ull	/* unknown: read-only mount only */
/*
 * INCOMPAT_DATA_VEC: the cleaner's buffers outside the chain may hold
 * BR_REC_DATA_VEC records.  Set before the first is written
 * (core/cleaner.c): a cleaner that knew only BR_REC_DATA would find no
 * live data in such a segment and free it under the files that use it.
 */
#define BR_FEATURE_INCOMPAT_DATA_VEC (1ull << 3)

#define BR_FEATURE_INCOMPAT_SUPP (BR_FEATURE_INCOMPAT_RELOC | \
				  BR_FEATURE_INCOMPAT_RELOCS | \
				  BR_FEATURE_INCOMPAT_CKPT_PACKED | \
				  BR_FEATURE_INCOMPAT_DATA_VEC) /* unknown: refuse */

/* At byte 0 of the device and, as a backup, of its last whole block. */
struct br_super_block {
/*000*/	br_le32 crc;		/* crc32c of bytes [4, BR_SUPER_SIZE) */
	br_le32 version;	/* BR_FORMAT_VERSION of the writer, >= 1 */
/*008*/	br_le64 magic;		/* BR_SUPER_MAGIC */
/*010*/	br_le32 block_size;	/* bytes, BR_BLOCK_SIZE */
	br_le32 buf_size;	/* bytes per log buffer, see limits above */
/*018*/	br_le64 seg_size;	/* bytes per segment, multiple of buf_size */
/*020*/	br_le64 dev_size;	/* bytes of the device at mkfs time */
/*028*/	br_le64 seg_count;	/* n: segments 0 .. n-1, log = 1 .. n-1 */
/*030*/	br_le64 log_start;	/* byte address of the log, = seg_size */
/*038*/	br_le64 log_end;	/* one past the last log byte, = n * seg_size */
/*040*/	br_le64 backup_off;	/* byte address of the backup superblock */
/*048*/	br_le64 ctime_sec;	/* creation time, seconds since the epoch */
/*050*/	br_le32 ctime_nsec;	/* nanoseconds, < 1e9 */
	br_le32 pad0;		/* zero */
/*058*/	br_le64 feat_compat;	/* BR_FEATURE_COMPAT_* */
/*060*/	br_le64 feat_ro_compat;	/* BR_FEATURE_RO_COMPAT_* */
/*068*/	br_le64 feat_incompat;	/* BR_FEATURE_INCOMPAT_* */
/*070*/	uint8_t uuid[16];	/* libuuid, random; never all zero */
/*080*/	char label[64];		/* UTF-8, NUL terminated, NUL padded */
/*0c0*/	uint8_t reserved[320];	/* zero */
/*200*/
};
static_assert(sizeof(struct br_super_block) == BR_SUPER_SIZE, "on-disk ABI");

/* ------------------------------------------------------------------ */
/* Checkpoint slots                                                     */
/* ------------------------------------------------------------------ */

#define BR_SLOT_MAGIC 0x54504b43u /* bytes "CKPT" */
#define BR_SLOT_SIZE 64u

/*
 * One of the two slots in blocks 1 and 2; the rest of its block is zero.
 * Recovery loads the checkpoint of generation `seq` (if ckpt_addr != 0:
 * its records are found by scanning the log from ckpt_addr, see
 * "Checkpoints" below) and replays the log from roll_addr, where it
 * expects a buffer with sequence roll_seq and prev_nonce roll_nonce, up to
 * the first missing or damaged buffer, skipping that buffer's records
 * before roll_skip.  `fsid` ties the slot to the superblock it was written
 * under.  Images written before roll_nonce / roll_skip existed hold zero
 * there, which means what mkfs means: nonce 0, nothing to skip.
 */
struct br_ckpt_slot {
/*00*/	br_le32 crc;		/* crc32c of bytes [4, BR_SLOT_SIZE) */
	br_le32 magic;		/* BR_SLOT_MAGIC */
/*08*/	br_le64 seq;		/* checkpoint generation, >= 1, +1 per write */
/*10*/	br_le64 ckpt_addr;	/* log address of the newest checkpoint, 0 = none */
/*18*/	br_le64 roll_addr;	/* log address where roll-forward starts */
/*20*/	br_le64 roll_seq;	/* buffer seq expected at roll_addr, >= 1 */
/*28*/	br_le64 fsid;		/* first 8 bytes of the superblock UUID */
/*30*/	br_le32 roll_nonce;	/* prev_nonce expected in the buffer at
				 * roll_addr (0 after mkfs) */
	br_le32 roll_skip;	/* records of the buffer at roll_addr that
				 * begin before this byte offset (from the
				 * buffer header) are covered by the
				 * checkpoint and not replayed; 0 = none */
/*38*/	uint8_t reserved[8];	/* zero */
/*40*/
};
static_assert(sizeof(struct br_ckpt_slot) == BR_SLOT_SIZE, "on-disk ABI");

/* ------------------------------------------------------------------ */
/* Metadata records (the filesystem: core/fsys, core/apply)             */
/* ------------------------------------------------------------------ */

/*
 * Each metadata record describes one whole change, so replay applies it
 * entirely or not at all (a record lives in one buffer; a buffer is valid
 * or not).  Replay applies records in log order with the same code the
 * mounted filesystem uses, so the log alone rebuilds the tree.
 *
 * Names are raw bytes, 1..255, no '/' and no NUL, not NUL-terminated, and
 * follow the fixed part of the record (in the order the struct says).
 * Times are seconds (signed, since the epoch) + nanoseconds (< 1e9).
 * Inode numbers are never reused: a record about an inode that an earlier
 * record deleted is skipped by replay (an unlinked file still open may be
 * written and changed until it is closed).  h.ino names the inode the
 * record is about; h.flags is 0.
 *
 * nlink is not stored: it follows from CREATE / LINK / UNLINK / RENAME
 * (files: number of names; directories: 2 + subdirectories).  A file's size
 * changes through BR_REC_DATA (size = max(size, off + bytes)) and
 * BR_REC_INODE (size set exactly: data past it is dropped).
 */
enum br_meta_rec_type {
	BR_REC_INODE = 16,	/* br_rec_inode: attributes and size */
	BR_REC_CREATE = 17,	/* br_rec_create + name [+ symlink target] */
	BR_REC_LINK = 18,	/* br_rec_link + name: new name for h.ino */
	BR_REC_UNLINK = 19,	/* br_rec_link + name: remove the name */
	BR_REC_RENAME = 20,	/* br_rec_rename + old name + new name */
	BR_REC_PUNCH = 21,	/* br_rec_punch: drop file data in a range */
	BR_REC_XATTR_SET = 22,	/* br_rec_xattr + name + value */
	BR_REC_XATTR_DEL = 23,	/* br_rec_xattr + name (value_len 0) */
	BR_REC_RELOC = 24,	/* br_rec_reloc: the cleaner moved data
				 * (needs BR_FEATURE_INCOMPAT_RELOC) */
	BR_REC_RELOCS = 25,	/* br_rec_relocs + packed moves (needs
				 * BR_FEATURE_INCOMPAT_RELOCS) */
};

struct br_disk_time {
/*00*/	br_le64 sec;		/* seconds since the epoch, two's complement */
/*08*/	br_le32 nsec;		/* < 1e9 */
	br_le32 pad;		/* zero */
};
static_assert(sizeof(struct br_disk_time) == 16, "on-disk ABI");

/* Everything about an inode except nlink and its data. */
struct br_disk_attr {
/*00*/	br_le32 mode;		/* S_IFMT type bits + permission bits */
	br_le32 uid;
/*08*/	br_le32 gid;
	br_le32 pad;		/* zero */
/*10*/	br_le64 rdev;		/* device number for S_IFCHR / S_IFBLK */
/*18*/	br_le64 size;		/* bytes; regular files and symlinks */
/*20*/	struct br_disk_time atime;
/*30*/	struct br_disk_time mtime;
/*40*/	struct br_disk_time ctime;
};
static_assert(sizeof(struct br_disk_attr) == 80, "on-disk ABI");

/* setattr, truncate, and the lazily logged times of a written file.  The
 * type bits of attr.mode must match the inode's. */
struct br_rec_inode {
/*00*/	struct br_rec_header h;	/* BR_REC_INODE */
/*10*/	struct br_disk_attr attr;
};
static_assert(sizeof(struct br_rec_inode) == 96, "on-disk ABI");

/* A new inode h.ino (never used before) named `name` in `parent`; the root
 * directory is created with parent 0 and no name.  The parent's mtime and
 * ctime become attr.ctime. */
struct br_rec_create {
/*00*/	struct br_rec_header h;	/* BR_REC_CREATE */
/*10*/	br_le64 parent;		/* directory inode, 0 for the root */
/*18*/	struct br_disk_attr attr;
/*68*/	br_le16 name_len;	/* bytes of name after the struct */
	br_le16 pad;		/* zero */
	br_le32 target_len;	/* symlinks: bytes of target after the name */
};
static_assert(sizeof(struct br_rec_create) == 112, "on-disk ABI");

/* LINK: add name -> h.ino in parent.  UNLINK: remove name (which must name
 * h.ino) from parent; an inode left with no name is deleted. */
struct br_rec_link {
/*00*/	struct br_rec_header h;	/* BR_REC_LINK or BR_REC_UNLINK */
/*10*/	br_le64 parent;
/*18*/	struct br_disk_time time;	/* new ctime / parent mtime */
/*28*/	br_le16 name_len;
	br_le16 pad;
	br_le32 pad2;
};
static_assert(sizeof(struct br_rec_link) == 48, "on-disk ABI");

#define BR_RENAME_NOREPLACE 1u	/* as RENAME_NOREPLACE */
#define BR_RENAME_EXCHANGE 2u	/* as RENAME_EXCHANGE */

/* Move old_parent/old name (which is h.ino) to new_parent/new name,
 * replacing what the new name held (not with EXCHANGE: swap the two). */
struct br_rec_rename {
/*00*/	struct br_rec_header h;	/* BR_REC_RENAME */
/*10*/	br_le64 old_parent;
/*18*/	br_le64 new_parent;
/*20*/	struct br_disk_time time;
/*30*/	br_le32 flags;		/* BR_RENAME_* */
	br_le16 old_len;
	br_le16 new_len;
};
static_assert(sizeof(struct br_rec_rename) == 56, "on-disk ABI");

/* Drop the data of h.ino in [off, off + len): fallocate(PUNCH_HOLE). */
struct br_rec_punch {
/*00*/	struct br_rec_header h;	/* BR_REC_PUNCH */
/*10*/	br_le64 off;
/*18*/	br_le64 len;
/*20*/	struct br_disk_time time;	/* new mtime and ctime */
};
static_assert(sizeof(struct br_rec_punch) == 48, "on-disk ABI");

/* Set (create or replace) or remove one extended attribute of h.ino. */
struct br_rec_xattr {
/*00*/	struct br_rec_header h;	/* BR_REC_XATTR_SET or BR_REC_XATTR_DEL */
/*10*/	struct br_disk_time time;	/* new ctime */
/*20*/	br_le16 name_len;	/* 1..255 */
	br_le16 pad;
	br_le32 value_len;	/* 0..65536 */
};
static_assert(sizeof(struct br_rec_xattr) == 40, "on-disk ABI");

/*
 * The cleaner moved file data (core/cleaner.h): the bytes of h.ino in
 * [off, off + len) that lay at log address old_addr + (x - off) were
 * copied, durably before this record was written, to new_addr + (x - off).
 * Applying it maps to the copy every piece of the range that the map
 * still has DURABLE at exactly its old address; a piece mapped anywhere
 * else (overwritten, punched, truncated since the copy was made) or not
 * at all stays as it is, and a record about a deleted inode is ignored.
 * The result depends on the map alone, so replay does what the live
 * filesystem did.  File size and times do not change.  The copies live in
 * buffers outside the chain (BR_SEQ_OFF_CHAIN) that replay never reads.
 */
struct br_rec_reloc {
/*00*/	struct br_rec_header h;	/* BR_REC_RELOC */
/*10*/	br_le64 off;		/* file offset of the first byte */
/*18*/	br_le64 len;		/* bytes, >= 1 */
/*20*/	br_le64 old_addr;	/* log address of byte `off` before */
/*28*/	br_le64 new_addr;	/* log address of its copy */
};
static_assert(sizeof(struct br_rec_reloc) == 48, "on-disk ABI");

/*
 * Many moves of h.ino's data in one record, each meaning what one
 * br_rec_reloc means, applied in order (what the cleaner writes: a
 * br_rec_reloc per moved 4 KiB piece cost 48 bytes, ~9 % of the device
 * bytes at 90 % full).  `count` entries follow the struct, packed with
 * no padding, and fill the record exactly (h.len).  An entry is four
 * LEB128 varints (7 bits a byte, least significant first, bit 7 set on
 * every byte but the last, at most 10 bytes):
 *   zigzag(off - end.off), len, zigzag(old - end.old), zigzag(new - end.new)
 * where `end` is the previous entry's off + len, old_addr + len and
 * new_addr + len (0, 0, 0 before the first), differences are taken
 * modulo 2^64 and zigzag(d) = (d << 1) ^ (d >> 63) for d as signed.  A
 * run of pieces copied one after the other costs ~10 bytes a piece.
 * br_reloc_put / br_reloc_get below are the codec.
 */
struct br_rec_relocs {
/*00*/	struct br_rec_header h;	/* BR_REC_RELOCS */
/*10*/	br_le32 count;		/* entries, >= 1 */
	br_le32 pad;		/* zero */
};
static_assert(sizeof(struct br_rec_relocs) == 24, "on-disk ABI");

/* One move, decoded. */
struct br_reloc {
	uint64_t off, len, old_addr, new_addr;
};

#define BR_RELOC_ENT_MAX 40u	/* bytes of one encoded entry, at most */

static inline unsigned br_uvar_put(uint8_t *p, uint64_t v)
{
	unsigned n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* 0: truncated, or longer than 64 bits. */
static inline unsigned br_uvar_get(const uint8_t *p, size_t avail,
				   uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned i = 0; i < 10 && i < avail; i++) {
		if (i == 9 && p[i] > 1)
			return 0;
		x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

static inline uint64_t br_zigzag(uint64_t d)
{
	return (d << 1) ^ (0 - (d >> 63));
}

static inline uint64_t br_unzigzag(uint64_t z)
{
	return (z >> 1) ^ (0 - (z & 1));
}

/* Encode e after the entry whose ends are *end (zeroed before the
 * first) into p (BR_RELOC_ENT_MAX bytes of room); *end moves past e.
 * Returns the bytes written. */
static inline unsigned br_reloc_put(uint8_t *p, struct br_reloc *end,
				    const struct br_reloc *e)
{
	unsigned n = br_uvar_put(p, br_zigzag(e->off - end->off));

	n += br_uvar_put(p + n, e->len);
	n += br_uvar_put(p + n, br_zigzag(e->old_addr - end->old_addr));
	n += br_uvar_put(p + n, br_zigzag(e->new_addr - end->new_addr));
	end->off = e->off + e->len;
	end->old_addr = e->old_addr + e->len;
	end->new_addr = e->new_addr + e->len;
	return n;
}

/* Decode the entry at p (avail bytes left) after *end, which moves past
 * it.  Returns the bytes read, 0 if they do not hold a whole entry (the
 * values are not checked: the caller's job). */
static inline unsigned br_reloc_get(const uint8_t *p, size_t avail,
				    struct br_reloc *end, struct br_reloc *e)
{
	uint64_t v[4];
	unsigned n = 0;

	for (int i = 0; i < 4; i++) {
		unsigned k = br_uvar_get(p + n, avail - n, &v[i]);

		if (!k)
			return 0;
		n += k;
	}
	e->off = end->off + br_unzigzag(v[0]);
	e->len = v[1];
	e->old_addr = end->old_addr + br_unzigzag(v[2]);
	e->new_addr = end->new_addr + br_unzigzag(v[3]);
	end->off = e->off + e->len;
	end->old_addr = e->old_addr + e->len;
	end->new_addr = e->new_addr + e->len;
	return n;
}

/* Encode the piece (off, len) of a BR_REC_DATA_VEC after the one ending
 * at *end (0 before the first) into p (BR_VEC_ENT_MAX bytes of room);
 * *end moves past it.  Returns the bytes written. */
static inline unsigned br_vec_ent_put(uint8_t *p, uint64_t *end,
				      uint64_t off, uint64_t len)
{
	unsigned n = br_uvar_put(p, br_zigzag(off - *end));

	n += br_uvar_put(p + n, len);
	*end = off + len;
	return n;
}

/*
 * The pieces of a BR_REC_DATA_VEC record of `len` bytes (h.len), in
 * order.  br_vec_begin checks the whole record first (count >= 1, the
 * entries exactly `elen` bytes, every len >= 1 and no file range past
 * 2^64, the pieces' bytes exactly the rest) and returns 0, or -1 if it
 * does not hold; then each br_vec_next gives a piece's file offset, its
 * length and where its bytes start in the record, and returns 0 after the
 * last.
 */
struct br_vec_it {
	const uint8_t *ent;	/* the entries */
	uint32_t elen, pos;	/* their bytes, read so far */
	uint32_t at;		/* the next piece's bytes in the record */
	uint64_t end;
};

static inline int br_vec_next(struct br_vec_it *it, uint64_t *off,
			      uint64_t *len, uint32_t *at)
{
	uint64_t z;
	unsigned k;

	if (it->pos == it->elen)
		return 0;
	k = br_uvar_get(it->ent + it->pos, it->elen - it->pos, &z);
	if (!k)
		return -1;
	it->pos += k;
	k = br_uvar_get(it->ent + it->pos, it->elen - it->pos, len);
	if (!k)
		return -1;
	it->pos += k;
	*off = it->end + br_unzigzag(z);
	*at = it->at;
	it->at += (uint32_t)*len;
	it->end = *off + *len;
	return 1;
}

static inline int br_vec_begin(struct br_vec_it *it, const void *rec,
			       uint32_t len)
{
	const struct br_rec_data_vec *r = rec;
	uint32_t count, elen, n = 0;
	uint64_t bytes = 0, off, plen;
	uint32_t at;
	int k;

	if (len < sizeof(*r))
		return -1;
	count = br_le32_get(r->count);
	elen = br_le32_get(r->elen);
	if (!count || elen > len - sizeof(*r))
		return -1;
	it->ent = (const uint8_t *)rec + (len - elen);
	it->elen = elen;
	it->pos = 0;
	it->at = sizeof(*r);
	it->end = 0;
	while ((k = br_vec_next(it, &off, &plen, &at)) > 0) {
		if (!plen || off + plen < off || plen > len ||
		    bytes + plen > len - sizeof(*r) - elen)
			return -1;
		bytes += plen;
		n++;
	}
	if (k < 0 || n != count || bytes != len - sizeof(*r) - elen)
		return -1;
	it->pos = 0;
	it->at = sizeof(*r);
	it->end = 0;
	return 0;
}

/* --- end of metadata records --------------------------------------- */

/* ------------------------------------------------------------------ */
/* Checkpoints (core/checkpoint)                                        */
/* ------------------------------------------------------------------ */

/*
 * A checkpoint is the whole metadata (the map) serialised into one blob
 * and written into the log as ordinary records, through the same store:
 *
 *   CKPT_CUT   written while every change is blocked (namespace + all
 *              inode locks held); the blob describes exactly the records
 *              before it.  Its buffer is the roll-forward point: the slot's
 *              roll_addr / roll_seq / roll_nonce name that buffer and
 *              roll_skip the end of the CUT record inside it.
 *   CKPT_HEAD  after the cut: generation, blob length and CRC32C.
 *   CKPT_DATA  pieces of the blob, each with its byte offset in the blob;
 *              other records may be interleaved with them.
 *
 * The slot (generation = slot seq) is written only after every record of
 * the checkpoint, and every buffer the blob's extents point into, is
 * durable.  Mount scans the log from the roll point for the HEAD of the
 * slot's generation and its pieces; a blob that is incomplete (a hole in
 * the log), fails its CRC or does not parse is BR_ERR_CORRUPT and mount
 * falls back to the other slot.  Roll-forward then replays the records
 * after the cut and ignores every CKPT_* record (of any generation).
 * h.ino is 0 in all three.
 */
enum br_ckpt_rec_type {
	BR_REC_CKPT_CUT = 32,	/* br_rec_ckpt_cut */
	BR_REC_CKPT_HEAD = 33,	/* br_rec_ckpt_head */
	BR_REC_CKPT_DATA = 34,	/* br_rec_ckpt_data + blob bytes */
};

struct br_rec_ckpt_cut {
/*00*/	struct br_rec_header h;	/* BR_REC_CKPT_CUT */
/*10*/	br_le64 gen;		/* checkpoint generation (slot seq) */
};
static_assert(sizeof(struct br_rec_ckpt_cut) == 24, "on-disk ABI");

struct br_rec_ckpt_head {
/*00*/	struct br_rec_header h;	/* BR_REC_CKPT_HEAD */
/*10*/	br_le64 gen;
/*18*/	br_le64 blob_len;	/* bytes, >= sizeof(struct br_ckpt_blob) */
/*20*/	br_le32 blob_crc;	/* crc32c of the whole blob */
	br_le32 npieces;	/* CKPT_DATA records that follow */
};
static_assert(sizeof(struct br_rec_ckpt_head) == 40, "on-disk ABI");

struct br_rec_ckpt_data {
/*00*/	struct br_rec_header h;	/* BR_REC_CKPT_DATA */
/*10*/	br_le64 gen;
/*18*/	br_le64 off;		/* byte offset of this piece in the blob */
};
static_assert(sizeof(struct br_rec_ckpt_data) == 32, "on-disk ABI");

/*
 * The blob.  Everything 8-byte aligned; variable parts padded to 8 with
 * zeros.  Layout:
 *
 *   struct br_ckpt_blob
 *   ninodes x { struct br_ckpt_inode, symlink target, xattrs, dirents,
 *               extents }   (a directory's entries in readdir order)
 *   nseg x br_le64          segment usage table at usage_off
 *   nseg x br_le64          segment age table at age_off (versions 2, 3)
 *
 * Only inodes that have a name (nlink > 0) are stored: an inode that lost
 * its last name is deleted by replay too.  Extents hold durable log
 * addresses only.  Segment usage: bytes of file data (extents) that lie in
 * each segment, index = address / seg_size (segment 0 holds no log);
 * metadata records and the checkpoint itself are not counted (a cleaner
 * must also keep the segments from the roll point on, and those of the
 * two newest checkpoints).  Segment age: the newest buffer seq placed in
 * (or, for the cleaner's heads, moved into) each segment, 0 = none; the
 * cleaner's cost-benefit clock (core/segment.h), so it survives a
 * remount.  Version 1 blobs have no age table (age_off 0).
 *
 * Extents: versions 1 and 2 store nextent struct br_ckpt_extent (24
 * bytes each).  Version 3 (INCOMPAT_CKPT_PACKED) packs them, as the
 * varints of BR_REC_RELOCS: per extent
 *   zigzag(off - end_off), len << 1 | fixed, then
 *   fixed 0: zigzag(addr - end_addr)
 *   fixed 1: addr as 8 bytes little-endian (end_addr unchanged)
 * with end_off / end_addr the previous extent's off + len / addr + len
 * (0 before the first of the inode; `fixed` extents do not move
 * end_addr), the inode's extents back to back, padded to 8 with zeros.
 * A file fragmented by 4 KiB overwrites costs ~8 bytes an extent (its
 * blob was 5.7 MB of a 1 GiB log in version 2, which the log's reserve
 * had to hold twice over: the last checkpoint and room for the next).
 * The writer uses `fixed` for extents whose address is patched in once
 * their buffer has landed.
 */
#define BR_CKPT_MAGIC 0x504b4342u	/* bytes "BCKP" */
#define BR_CKPT_VERSION 3u		/* written; 1 and 2 are still read */
#define BR_CKPT_EXT_MAX 23u		/* bytes of a packed extent, at most */

struct br_ckpt_blob {
/*00*/	br_le32 magic;		/* BR_CKPT_MAGIC */
	br_le32 version;	/* BR_CKPT_VERSION */
/*08*/	br_le64 gen;		/* = the head's gen */
/*10*/	br_le64 ninodes;
/*18*/	br_le64 next_ino;	/* never reuse inode numbers below this */
/*20*/	br_le64 usage_off;	/* blob offset of the usage table */
/*28*/	br_le64 nseg;		/* usage entries: the superblock's seg_count */
/*30*/	br_le64 data_bytes;	/* sum of all extent lengths */
/*38*/	br_le64 age_off;	/* blob offset of the age table (version
				 * 2: = usage_off + 8 * nseg; version 1:
				 * zero) */
};
static_assert(sizeof(struct br_ckpt_blob) == 64, "on-disk ABI");

struct br_ckpt_inode {
/*00*/	br_le64 ino;
/*08*/	br_le64 parent;		/* directories: the parent (root: itself) */
/*10*/	struct br_disk_attr attr;	/* size included */
/*60*/	br_le32 nlink;
	br_le32 target_len;	/* symlinks: target bytes that follow */
/*68*/	br_le32 nxattr;
	br_le32 ndirent;	/* directories */
/*70*/	br_le64 nextent;	/* regular files */
};
static_assert(sizeof(struct br_ckpt_inode) == 120, "on-disk ABI");

struct br_ckpt_xattr {	/* + name + value, padded to 8 */
/*00*/	br_le16 name_len;	/* 1..255 */
	br_le16 pad;
	br_le32 value_len;	/* 0..65536 */
};
static_assert(sizeof(struct br_ckpt_xattr) == 8, "on-disk ABI");

struct br_ckpt_dirent {	/* + name, padded to 8 */
/*00*/	br_le64 ino;
/*08*/	br_le32 type;		/* S_IFMT bits of the target */
	br_le16 name_len;	/* 1..255 */
	br_le16 pad;
};
static_assert(sizeof(struct br_ckpt_dirent) == 16, "on-disk ABI");

struct br_ckpt_extent {
/*00*/	br_le64 off;		/* file offset */
/*08*/	br_le64 addr;		/* log address of the first byte */
/*10*/	br_le32 len;		/* bytes, 1..1 MiB (never crosses a chunk) */
	br_le32 pad;
};
static_assert(sizeof(struct br_ckpt_extent) == 24, "on-disk ABI");

#endif /* BR_FORMAT_H */
