/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Superblock and checkpoint slots: encode, decode with full validation,
 * and read/write them on a device.  The layout is described in format.h.
 *
 * Decoded values live in host-order structs (struct br_super, struct
 * br_slot); the on-disk structs never leave this module.
 *
 * Errors:
 *   BR_ERR_CORRUPT      the bytes are not a valid superblock / slot: wrong
 *                       magic, CRC mismatch, impossible geometry, fields
 *                       that must be zero are not.  Never retried as a
 *                       different error: bad bytes on disk are reported by
 *                       this one name.
 *   BR_ERR_UNSUPPORTED  a valid superblock this code must not mount: a
 *                       format version above BR_FORMAT_VERSION or an
 *                       incompat feature bit it does not know.
 *   other -errno        I/O (pread/pwrite/fdatasync/ioctl) errors.
 *
 * Device I/O uses 4096-aligned buffers and whole blocks, so every fd may be
 * opened O_DIRECT.
 */
#ifndef BR_SUPER_H
#define BR_SUPER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

#define BR_ERR_CORRUPT (-EUCLEAN)
#define BR_ERR_UNSUPPORTED (-EPROTONOSUPPORT)

/* A decoded superblock: every field in host order. */
struct br_super {
	uint32_t version;	/* format version of the writer */
	uint32_t block_size;	/* bytes, BR_BLOCK_SIZE */
	uint32_t buf_size;	/* bytes per log buffer */
	uint64_t seg_size;	/* bytes per segment */
	uint64_t dev_size;	/* bytes of the device at mkfs time */
	uint64_t seg_count;	/* segments including segment 0 */
	uint64_t log_start;	/* first log byte (= seg_size) */
	uint64_t log_end;	/* one past the last log byte */
	uint64_t backup_off;	/* byte address of the backup superblock */
	uint64_t ctime_sec;	/* creation time */
	uint32_t ctime_nsec;
	uint64_t feat_compat;
	uint64_t feat_ro_compat;
	uint64_t feat_incompat;
	uint8_t uuid[16];
	char label[BR_LABEL_MAX + 1];	/* NUL terminated */
	bool from_backup;	/* set by br_super_read: primary was unusable */
};

/* A decoded checkpoint slot. */
struct br_slot {
	uint64_t seq;		/* checkpoint generation, >= 1 */
	uint64_t ckpt_addr;	/* log address of the checkpoint, 0 = none */
	uint64_t roll_addr;	/* where roll-forward starts */
	uint64_t roll_seq;	/* buffer seq expected at roll_addr */
	uint32_t roll_nonce;	/* prev_nonce expected at roll_addr */
	uint32_t roll_skip;	/* bytes of that buffer the checkpoint covers,
				 * <= BR_BUF_SIZE_MAX (0: none) */
	unsigned which;		/* slot it was read from / is written to: 0, 1 */
};

/*
 * Fill the geometry of *sb for a device of dev_size bytes: block, buffer
 * and segment sizes, segment count, log range, backup offset, version.
 * Every other field is zeroed (the caller sets uuid, label, ctime).
 * On failure returns -EINVAL (a size out of range or not aligned) or
 * -ENOSPC (the device is too small), and when `why` is not NULL writes a
 * one-line reason with the numbers into it (at most why_len bytes, NUL
 * terminated), e.g. "size 4096 is below the minimum of 64 MiB".
 */
int br_super_geometry(uint64_t dev_size, uint64_t seg_size, uint32_t buf_size,
		      struct br_super *sb, char *why, size_t why_len);

/*
 * The sizes mkfs uses when none are given (mkfs.bringfs.8, LIMITS).
 *
 * Segment size: the largest power of two from BR_SEG_SIZE_AUTO_MIN to
 * BR_SEG_SIZE_DEFAULT (format.h) that still gives the log at least
 * BR_SEG_COUNT_GOAL log segments (segment 0 is not log); the smallest
 * when none does.  Why a count:
 * a fixed handful of segments is never available to user data (the
 * BR_SEG_RESERVE reserve, with the cleaner on BR_SEG_CLEAN_ROOM more
 * (segment.h), the log's current and next segment and the cleaner's
 * head: 6; and the BR_CLEAN_SYNC_SEGS above the reserve that writers
 * clean from are rarely filled, about 8 in all; besides, statfs does
 * not promise the dead eighth of a segment over BR_SEG_VICTIM_MAX live);
 * with 8 MiB segments a 256 MiB image has 31, so that overhead alone is
 * a quarter of the device and 90 % utilisation cannot even be reached.
 * With 256 segments the fixed part is about 3 %.  Big devices keep
 * BR_SEG_SIZE_DEFAULT: fewer segment switches, and a cleaner victim is
 * read in one large I/O.
 *
 * Buffer size: BR_BUF_SIZE_DEFAULT, but no more than a segment /
 * BR_SEG_BUFS_MIN: a buffer that does not fit in what is left of a
 * segment goes to the next one and the tail is lost (a buffer sealed
 * early by fsync or a checkpoint leaves such tails), so a segment must
 * hold more than one buffer.  Not more than 2: smaller buffers cost
 * sequential bandwidth (fio 1 MiB writes to a 256 MiB image, 1 MiB
 * segments: 256 KiB buffers ~470 MiB/s, 512 KiB ~670-930, 8 MiB
 * segments of 1 MiB buffers ~660-970, on a noisy 2-core machine).
 *
 * *seg_size / *buf_size: 0 = choose (in), the choice (out); a size the
 * caller gave is kept (a buffer size given steers the segment size: the
 * segment is then its power-of-two multiple, at least the buffer; a
 * segment size given alone steers the buffer: the largest power of two
 * from BR_BUF_SIZE_MIN to BR_BUF_SIZE_DEFAULT that divides it
 * BR_SEG_BUFS_MIN times or more).  The result is not checked:
 * br_super_geometry does that.
 */
#define BR_SEG_COUNT_GOAL 256u
#define BR_SEG_SIZE_AUTO_MIN (1ull << 20)
#define BR_SEG_BUFS_MIN 2u
void br_super_default_sizes(uint64_t dev_size, uint64_t *seg_size,
			    uint32_t *buf_size);

/*
 * Validate *sb as br_super_decode would (geometry, label, uuid, features);
 * 0, BR_ERR_CORRUPT or BR_ERR_UNSUPPORTED; `why` as above (may be NULL).
 */
int br_super_check(const struct br_super *sb, char *why, size_t why_len);

/*
 * Set the label: -ENAMETOOLONG if longer than BR_LABEL_MAX bytes, -EILSEQ
 * if not valid UTF-8 (overlong forms, surrogates and code points above
 * U+10FFFF are invalid).
 */
int br_super_set_label(struct br_super *sb, const char *label);

/* The fsid stamped into buffer headers and slots: the first 8 UUID bytes
 * read as a little-endian integer. */
uint64_t br_super_fsid(const struct br_super *sb);

/* 0 if a read-write mount may proceed, -EROFS if an unknown ro_compat
 * feature is set. */
int br_super_can_write(const struct br_super *sb);

/*
 * Encode *sb (which must pass br_super_check) into `out`, BR_SUPER_SIZE
 * bytes, CRC included.  -EINVAL if *sb does not pass the check.
 */
int br_super_encode(const struct br_super *sb, void *out);

/*
 * Decode and validate BR_SUPER_SIZE bytes.  BR_ERR_CORRUPT for bad magic,
 * CRC, geometry, label padding, reserved bytes or an all-zero UUID;
 * BR_ERR_UNSUPPORTED for a newer version or an unknown incompat feature
 * (then *sb holds the decoded fields, unchecked, for tools to report).
 */
int br_super_decode(const void *in, struct br_super *sb);

/*
 * Size in bytes of an open regular file (st_size) or block device
 * (BLKGETSIZE64).  -ENOTBLK for any other file type, -errno otherwise.
 */
int br_super_device_size(int fd, uint64_t *size);

/* Byte address of the backup superblock on a device of `dev_size` bytes
 * (its last whole block); 0 if the device is smaller than two blocks. */
uint64_t br_super_backup_off(uint64_t dev_size);

/*
 * Read the superblock of the device open at fd: the primary at offset 0,
 * and if it is unreadable or BR_ERR_CORRUPT, the backup in the device's
 * last whole block (sb->from_backup is then true).  A superblock whose
 * dev_size exceeds the device's present size is BR_ERR_CORRUPT (the
 * device was truncated).  Returns 0, BR_ERR_UNSUPPORTED (from the first
 * copy that decodes that far; a newer filesystem is never mounted through
 * an older backup), or the primary's error when both copies fail.
 */
int br_super_read(int fd, struct br_super *sb);

/*
 * Write the primary superblock, fdatasync, then the backup, fdatasync: a
 * crash at any point leaves at least one valid copy.  -EINVAL if *sb does
 * not pass br_super_check, -errno from pwrite/fdatasync (-EIO for a short
 * write).
 */
int br_super_write(int fd, const struct br_super *sb);

/*
 * Encode/decode one slot (BR_SLOT_SIZE bytes).  Decode checks magic, CRC,
 * fsid against sb, seq >= 1, roll_seq >= 1, block-aligned addresses inside
 * [log_start, log_end) (ckpt_addr may be 0), roll_skip <= BR_BUF_SIZE_MAX,
 * zero reserved bytes; any
 * failure is BR_ERR_CORRUPT.  Encode returns -EINVAL for a slot that would
 * not decode.  slot->which is not stored.
 */
int br_slot_encode(const struct br_super *sb, const struct br_slot *slot,
		   void *out);
int br_slot_decode(const struct br_super *sb, const void *in,
		   struct br_slot *slot);

/*
 * Read both slots and return the valid one with the higher seq (which set
 * to its slot).  BR_ERR_CORRUPT if neither is valid: mkfs writes slot 0,
 * and slots are written alternately, so a healthy filesystem always has
 * one.  -errno if a slot cannot be read and the other is not valid.
 */
int br_slot_read_newest(int fd, const struct br_super *sb,
			struct br_slot *slot);

/*
 * Write *slot into slot `which` (0 or 1; slot->which is ignored) and
 * fdatasync.  To publish a checkpoint after reading `cur` with
 * br_slot_read_newest: seq = cur.seq + 1, which = cur.which ^ 1, so the
 * newest valid slot is never the one being overwritten.  -EINVAL for a bad
 * slot or `which`, -errno from pwrite/fdatasync.
 */
int br_slot_write(int fd, const struct br_super *sb, unsigned which,
		  const struct br_slot *slot);

/* Write an all-zero block over slot `which` and fdatasync (mkfs). */
int br_slot_clear(int fd, unsigned which);

/*
 * Write an empty filesystem described by *sb (geometry, uuid, label and
 * ctime filled in) to fd: zero the first log block and slot 1, write slot
 * 0 (generation 1, no checkpoint, roll-forward from the log's start), then
 * the superblock and its backup.  Slots and the first log block come
 * first: a buffer or slot left by an earlier format must never be read
 * under this one.  0 or -errno.
 */
int br_format(int fd, const struct br_super *sb);

/*
 * Tests and tools: create or truncate the regular file `path` to `size`
 * bytes and format it with the given segment and buffer sizes and a new
 * uuid (no fallocate, no checks of what was there: mkfs.bringfs does
 * those).  0, -errno or BR_ERR_* from br_super_geometry; `why` (may be
 * NULL) says why.
 */
int br_format_file(const char *path, uint64_t size, uint64_t seg_size,
		   uint32_t buf_size, char *why, size_t why_len);

#endif /* BR_SUPER_H */
