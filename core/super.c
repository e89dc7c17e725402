/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Superblock and checkpoint slots (see super.h, layout in format.h).
 *
 * Decode order for the superblock: magic, CRC, then version and incompat
 * features, then geometry.  The CRC comes before the version check so a
 * bit flip in `version` reads as corruption, not as "newer format"; that is
 * sound because every version keeps the CRC over [4, BR_SUPER_SIZE).
 */
#include "super.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "crc32c.h"
#include "util.h"

/* "64 MiB" when the value is a whole number of a binary unit, else bytes. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;

	while (u + 1 < sizeof(unit) / sizeof(unit[0]) && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)v, unit[u]);
	return buf;
}

uint64_t br_super_backup_off(uint64_t dev_size)
{
	uint64_t whole = dev_size & ~(uint64_t)(BR_BLOCK_SIZE - 1);

	return whole >= 2 * BR_BLOCK_SIZE ? whole - BR_BLOCK_SIZE : 0;
}

/* The sizes alone (no device): shared by geometry and check. */
static int sizes_check(uint64_t seg_size, uint32_t buf_size, char *why, size_t wl)
{
	char a[32], b[32];

	if (buf_size % BR_BLOCK_SIZE || buf_size < BR_BUF_SIZE_MIN ||
	    buf_size > BR_BUF_SIZE_MAX) {
		br_why(why, wl, "buffer size %u must be a multiple of 4096 from %s to %s",
			buf_size, human(BR_BUF_SIZE_MIN, a, sizeof(a)),
			human(BR_BUF_SIZE_MAX, b, sizeof(b)));
		return -EINVAL;
	}
	if (seg_size < buf_size || seg_size % buf_size) {
		br_why(why, wl, "segment size %llu is not a multiple of the buffer size %s",
			(unsigned long long)seg_size, human(buf_size, a, sizeof(a)));
		return -EINVAL;
	}
	if (seg_size > BR_SEG_SIZE_MAX) {
		br_why(why, wl, "segment size %llu is above the maximum of %s",
			(unsigned long long)seg_size, human(BR_SEG_SIZE_MAX, a, sizeof(a)));
		return -EINVAL;
	}
	return 0;
}

int br_super_geometry(uint64_t dev_size, uint64_t seg_size, uint32_t buf_size,
		      struct br_super *sb, char *why, size_t why_len)
{
	char a[32], b[32];
	uint64_t backup, n;
	int err;

	memset(sb, 0, sizeof(*sb));
	err = sizes_check(seg_size, buf_size, why, why_len);
	if (err)
		return err;
	if (dev_size < BR_DEV_SIZE_MIN) {
		br_why(why, why_len, "size %llu is below the minimum of %s",
			(unsigned long long)dev_size, human(BR_DEV_SIZE_MIN, a, sizeof(a)));
		return -ENOSPC;
	}
	backup = br_super_backup_off(dev_size);
	n = backup / seg_size;
	if (n < 1 + BR_LOG_SEGS_MIN) {
		br_why(why, why_len,
			"size %llu holds %llu log segments of %s, at least %u are needed",
			(unsigned long long)dev_size,
			(unsigned long long)(n ? n - 1 : 0),
			human(seg_size, a, sizeof(a)), BR_LOG_SEGS_MIN);
		return -ENOSPC;
	}
	if (n > BR_SEG_COUNT_MAX) {
		br_why(why, why_len,
			"size %llu needs %llu segments of %s, more than the maximum of %llu",
			(unsigned long long)dev_size, (unsigned long long)n,
			human(seg_size, b, sizeof(b)), (unsigned long long)BR_SEG_COUNT_MAX);
		return -EINVAL;
	}
	sb->version = BR_FORMAT_VERSION;
	sb->block_size = BR_BLOCK_SIZE;
	sb->buf_size = buf_size;
	sb->seg_size = seg_size;
	sb->dev_size = dev_size;
	sb->seg_count = n;
	sb->log_start = seg_size;
	sb->log_end = n * seg_size;
	sb->backup_off = backup;
	return 0;
}

void br_super_default_sizes(uint64_t dev_size, uint64_t *seg_size,
			    uint32_t *buf_size)
{
	uint64_t unit, lo, hi, seg, logsz;

	if (*seg_size) {
		/* the largest power of two up to the default that the
		 * segment holds BR_SEG_BUFS_MIN of (-S 512K alone was
		 * refused: "not a multiple of the buffer size 1 MiB") */
		uint32_t b = BR_BUF_SIZE_DEFAULT;

		while (!*buf_size && b > BR_BUF_SIZE_MIN &&
		       ((uint64_t)b * BR_SEG_BUFS_MIN > *seg_size ||
			*seg_size % b))
			b >>= 1;
		if (!*buf_size)
			*buf_size = b;
		return;
	}
	/* segment candidates: unit * 2^k in [lo, hi] */
	unit = *buf_size ? *buf_size : BR_BLOCK_SIZE;
	lo = unit;
	while (lo < BR_SEG_SIZE_AUTO_MIN)
		lo <<= 1;
	hi = BR_SEG_SIZE_DEFAULT > lo ? BR_SEG_SIZE_DEFAULT : lo;
	/* segment 0 and the backup block are not log */
	logsz = br_super_backup_off(dev_size);
	seg = lo;
	while (seg * 2 <= hi && logsz / (seg * 2) >= 1 + BR_SEG_COUNT_GOAL)
		seg *= 2;
	*seg_size = seg;
	if (!*buf_size) {
		uint64_t b = seg / BR_SEG_BUFS_MIN;

		if (b > BR_BUF_SIZE_DEFAULT)
			b = BR_BUF_SIZE_DEFAULT;
		if (b < BR_BUF_SIZE_MIN)
			b = BR_BUF_SIZE_MIN;
		*buf_size = (uint32_t)b;
	}
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i], need, cp;
		unsigned min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

int br_super_set_label(struct br_super *sb, const char *label)
{
	size_t len = strlen(label);

	if (len > BR_LABEL_MAX)
		return -ENAMETOOLONG;
	if (!utf8_valid((const unsigned char *)label, len))
		return -EILSEQ;
	memset(sb->label, 0, sizeof(sb->label));
	memcpy(sb->label, label, len);
	return 0;
}

uint64_t br_super_fsid(const struct br_super *sb)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | sb->uuid[i];
	return v;
}

int br_super_can_write(const struct br_super *sb)
{
	return (sb->feat_ro_compat & ~BR_FEATURE_RO_COMPAT_SUPP) ? -EROFS : 0;
}

static int features_check(const struct br_super *sb, char *why, size_t wl)
{
	if (sb->version > BR_FORMAT_VERSION) {
		br_why(why, wl, "format version %u is newer than the supported %u",
			sb->version, BR_FORMAT_VERSION);
		return BR_ERR_UNSUPPORTED;
	}
	if (sb->feat_incompat & ~BR_FEATURE_INCOMPAT_SUPP) {
		br_why(why, wl, "unknown incompatible features 0x%llx",
			(unsigned long long)(sb->feat_incompat & ~BR_FEATURE_INCOMPAT_SUPP));
		return BR_ERR_UNSUPPORTED;
	}
	return 0;
}

int br_super_check(const struct br_super *sb, char *why, size_t wl)
{
	struct br_super g;
	static const uint8_t zero_uuid[16];
	size_t llen;
	int err;

	if (sb->version < 1) {
		br_why(why, wl, "format version 0 is invalid");
		return BR_ERR_CORRUPT;
	}
	err = features_check(sb, why, wl);
	if (err)
		return err;
	if (sb->block_size != BR_BLOCK_SIZE) {
		br_why(why, wl, "block size %u is not %u", sb->block_size, BR_BLOCK_SIZE);
		return BR_ERR_CORRUPT;
	}
	/* The stored geometry must be exactly what mkfs computes for this
	 * device size: that checks every count and offset against each
	 * other in one place. */
	if (br_super_geometry(sb->dev_size, sb->seg_size, sb->buf_size, &g, why, wl))
		return BR_ERR_CORRUPT;
	if (g.seg_count != sb->seg_count || g.log_start != sb->log_start ||
	    g.log_end != sb->log_end || g.backup_off != sb->backup_off) {
		br_why(why, wl, "segment count or log range inconsistent with the device size");
		return BR_ERR_CORRUPT;
	}
	if (sb->ctime_nsec >= 1000000000u) {
		br_why(why, wl, "creation time nanoseconds out of range");
		return BR_ERR_CORRUPT;
	}
	if (!memcmp(sb->uuid, zero_uuid, sizeof(zero_uuid))) {
		br_why(why, wl, "UUID is all zero");
		return BR_ERR_CORRUPT;
	}
	llen = strnlen(sb->label, sizeof(sb->label));
	if (llen > BR_LABEL_MAX) {
		br_why(why, wl, "label is not NUL terminated");
		return BR_ERR_CORRUPT;
	}
	for (size_t i = llen; i < sizeof(sb->label); i++) {
		if (sb->label[i]) {
			br_why(why, wl, "label padding is not zero");
			return BR_ERR_CORRUPT;
		}
	}
	return 0;
}

int br_super_encode(const struct br_super *sb, void *out)
{
	struct br_super_block d;

	if (br_super_check(sb, NULL, 0))
		return -EINVAL;
	memset(&d, 0, sizeof(d));
	d.version = br_le32_put(sb->version);
	d.magic = br_le64_put(BR_SUPER_MAGIC);
	d.block_size = br_le32_put(sb->block_size);
	d.buf_size = br_le32_put(sb->buf_size);
	d.seg_size = br_le64_put(sb->seg_size);
	d.dev_size = br_le64_put(sb->dev_size);
	d.seg_count = br_le64_put(sb->seg_count);
	d.log_start = br_le64_put(sb->log_start);
	d.log_end = br_le64_put(sb->log_end);
	d.backup_off = br_le64_put(sb->backup_off);
	d.ctime_sec = br_le64_put(sb->ctime_sec);
	d.ctime_nsec = br_le32_put(sb->ctime_nsec);
	d.feat_compat = br_le64_put(sb->feat_compat);
	d.feat_ro_compat = br_le64_put(sb->feat_ro_compat);
	d.feat_incompat = br_le64_put(sb->feat_incompat);
	memcpy(d.uuid, sb->uuid, sizeof(d.uuid));
	static_assert(sizeof(d.label) == sizeof(sb->label), "label field");
	memcpy(d.label, sb->label, sizeof(d.label));
	d.crc = br_le32_put(br_crc32c(0, (const uint8_t *)&d + 4, sizeof(d) - 4));
	memcpy(out, &d, sizeof(d));
	return 0;
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

int br_super_decode(const void *in, struct br_super *sb)
{
	struct br_super_block d;
	int err;

	memcpy(&d, in, sizeof(d));
	memset(sb, 0, sizeof(*sb));
	if (br_le64_get(d.magic) != BR_SUPER_MAGIC)
		return BR_ERR_CORRUPT;
	if (br_le32_get(d.crc) != br_crc32c(0, (const uint8_t *)&d + 4, sizeof(d) - 4))
		return BR_ERR_CORRUPT;

	sb->version = br_le32_get(d.version);
	sb->block_size = br_le32_get(d.block_size);
	sb->buf_size = br_le32_get(d.buf_size);
	sb->seg_size = br_le64_get(d.seg_size);
	sb->dev_size = br_le64_get(d.dev_size);
	sb->seg_count = br_le64_get(d.seg_count);
	sb->log_start = br_le64_get(d.log_start);
	sb->log_end = br_le64_get(d.log_end);
	sb->backup_off = br_le64_get(d.backup_off);
	sb->ctime_sec = br_le64_get(d.ctime_sec);
	sb->ctime_nsec = br_le32_get(d.ctime_nsec);
	sb->feat_compat = br_le64_get(d.feat_compat);
	sb->feat_ro_compat = br_le64_get(d.feat_ro_compat);
	sb->feat_incompat = br_le64_get(d.feat_incompat);
	memcpy(sb->uuid, d.uuid, sizeof(sb->uuid));
	memcpy(sb->label, d.label, sizeof(sb->label));

	if (sb->version < 1)
		return BR_ERR_CORRUPT;
	err = features_check(sb, NULL, 0);
	if (err)
		return err;
	/* Version 1 knows every field: what it calls reserved must be zero.
	 * (A later version reads only the reserved bytes it defines.) */
	if (br_le32_get(d.pad0) || !all_zero(d.reserved, sizeof(d.reserved)))
		goto corrupt;
	if (br_super_check(sb, NULL, 0))
		goto corrupt;
	return 0;
corrupt:
	memset(sb, 0, sizeof(*sb));
	return BR_ERR_CORRUPT;
}

int br_super_device_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size))
			return -errno;
		return 0;
	}
	return -ENOTBLK;
}

/* One whole, 4096-aligned block: fine for O_DIRECT fds. */
struct block {
	_Alignas(BR_BLOCK_SIZE) uint8_t b[BR_BLOCK_SIZE];
};

static int block_read(int fd, uint64_t off, struct block *blk)
{
	int err = br_pread_full(fd, blk->b, sizeof(blk->b), off);

	return err == -ENODATA ? -EIO : err;	/* past the end of the device */
}

static int block_write(int fd, uint64_t off, const struct block *blk)
{
	int err = br_pwrite_full(fd, blk->b, sizeof(blk->b), off);

	return err == -ENODATA ? -EIO : err;
}

static int sync_fd(int fd)
{
	return fdatasync(fd) ? -errno : 0;
}

static int super_read_at(int fd, uint64_t off, uint64_t dev_size, struct br_super *sb)
{
	struct block blk;
	int err;

	err = block_read(fd, off, &blk);
	if (err)
		return err;
	err = br_super_decode(blk.b, sb);
	if (err)
		return err;
	/* A copy found at the wrong place (e.g. the backup of a larger
	 * filesystem copied into this one) or a device shorter than the
	 * filesystem is not ours to mount. */
	if (sb->dev_size > dev_size || (off && off != sb->backup_off)) {
		memset(sb, 0, sizeof(*sb));
		return BR_ERR_CORRUPT;
	}
	return 0;
}

int br_super_read(int fd, struct br_super *sb)
{
	uint64_t dev_size, backup;
	int err, err2;

	err = br_super_device_size(fd, &dev_size);
	if (err)
		return err;
	err = super_read_at(fd, BR_SUPER_OFF, dev_size, sb);
	if (err == 0 || err == BR_ERR_UNSUPPORTED)
		return err;
	backup = br_super_backup_off(dev_size);
	if (!backup)
		return err;
	err2 = super_read_at(fd, backup, dev_size, sb);
	if (err2 == 0 || err2 == BR_ERR_UNSUPPORTED) {
		sb->from_backup = true;
		return err2;
	}
	return err;
}

int br_super_write(int fd, const struct br_super *sb)
{
	struct block blk;
	int err;

	memset(&blk, 0, sizeof(blk));
	err = br_super_encode(sb, blk.b);
	if (err)
		return err;
	err = block_write(fd, BR_SUPER_OFF, &blk);
	if (!err)
		err = sync_fd(fd);
	if (!err)
		err = block_write(fd, sb->backup_off, &blk);
	if (!err)
		err = sync_fd(fd);
	return err;
}

static bool addr_in_log(const struct br_super *sb, uint64_t addr)
{
	return addr % BR_BLOCK_SIZE == 0 && addr >= sb->log_start && addr < sb->log_end;
}

static bool slot_valid(const struct br_super *sb, const struct br_slot *s)
{
	return s->seq >= 1 && s->roll_seq >= 1 && addr_in_log(sb, s->roll_addr) &&
	       s->roll_skip <= BR_BUF_SIZE_MAX &&
	       (s->ckpt_addr == 0 || addr_in_log(sb, s->ckpt_addr));
}

int br_slot_encode(const struct br_super *sb, const struct br_slot *slot, void *out)
{
	struct br_ckpt_slot d;

	if (!slot_valid(sb, slot))
		return -EINVAL;
	memset(&d, 0, sizeof(d));
	d.magic = br_le32_put(BR_SLOT_MAGIC);
	d.seq = br_le64_put(slot->seq);
	d.ckpt_addr = br_le64_put(slot->ckpt_addr);
	d.roll_addr = br_le64_put(slot->roll_addr);
	d.roll_seq = br_le64_put(slot->roll_seq);
	d.roll_nonce = br_le32_put(slot->roll_nonce);
	d.roll_skip = br_le32_put(slot->roll_skip);
	d.fsid = br_le64_put(br_super_fsid(sb));
	d.crc = br_le32_put(br_crc32c(0, (const uint8_t *)&d + 4, sizeof(d) - 4));
	memcpy(out, &d, sizeof(d));
	return 0;
}

int br_slot_decode(const struct br_super *sb, const void *in, struct br_slot *slot)
{
	struct br_ckpt_slot d;
	struct br_slot s = { 0 };

	memcpy(&d, in, sizeof(d));
	if (br_le32_get(d.magic) != BR_SLOT_MAGIC)
		return BR_ERR_CORRUPT;
	if (br_le32_get(d.crc) != br_crc32c(0, (const uint8_t *)&d + 4, sizeof(d) - 4))
		return BR_ERR_CORRUPT;
	if (br_le64_get(d.fsid) != br_super_fsid(sb) ||
	    !all_zero(d.reserved, sizeof(d.reserved)))
		return BR_ERR_CORRUPT;
	s.seq = br_le64_get(d.seq);
	s.ckpt_addr = br_le64_get(d.ckpt_addr);
	s.roll_addr = br_le64_get(d.roll_addr);
	s.roll_seq = br_le64_get(d.roll_seq);
	s.roll_nonce = br_le32_get(d.roll_nonce);
	s.roll_skip = br_le32_get(d.roll_skip);
	if (!slot_valid(sb, &s))
		return BR_ERR_CORRUPT;
	*slot = s;
	return 0;
}

int br_slot_read_newest(int fd, const struct br_super *sb, struct br_slot *slot)
{
	struct br_slot s[2] = { 0 };
	int err[2];
	struct block blk;

	for (unsigned w = 0; w < 2; w++) {
		err[w] = block_read(fd, BR_SLOT_OFF(w), &blk);
		if (!err[w])
			err[w] = br_slot_decode(sb, blk.b, &s[w]);
		s[w].which = w;
	}
	if (!err[0] && !err[1]) {
		*slot = s[1].seq > s[0].seq ? s[1] : s[0];
		return 0;
	}
	if (!err[0] || !err[1]) {
		*slot = err[0] ? s[1] : s[0];
		return 0;
	}
	/* Neither is valid: an I/O error says more than "corrupt". */
	return err[0] != BR_ERR_CORRUPT ? err[0] : err[1];
}

int br_slot_write(int fd, const struct br_super *sb, unsigned which,
		  const struct br_slot *slot)
{
	struct block blk;
	int err;

	if (which > 1)
		return -EINVAL;
	memset(&blk, 0, sizeof(blk));
	err = br_slot_encode(sb, slot, blk.b);
	if (err)
		return err;
	err = block_write(fd, BR_SLOT_OFF(which), &blk);
	return err ? err : sync_fd(fd);
}

int br_slot_clear(int fd, unsigned which)
{
	struct block blk;
	int err;

	if (which > 1)
		return -EINVAL;
	memset(&blk, 0, sizeof(blk));
	err = block_write(fd, BR_SLOT_OFF(which), &blk);
	return err ? err : sync_fd(fd);
}

int br_format(int fd, const struct br_super *sb)
{
	struct br_slot slot = { .seq = 1, .roll_addr = sb->log_start, .roll_seq = 1 };
	struct block blk;
	int err;

	memset(&blk, 0, sizeof(blk));
	err = block_write(fd, sb->log_start, &blk);
	if (!err)
		err = br_slot_clear(fd, 1);
	if (!err)
		err = br_slot_write(fd, sb, 0, &slot);
	if (!err)
		err = br_super_write(fd, sb);
	return err;
}

int br_format_file(const char *path, uint64_t size, uint64_t seg_size,
		   uint32_t buf_size, char *why, size_t why_len)
{
	struct br_super sb;
	int fd, err;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		br_why(why, why_len, "%s: %s", path, strerror(-err));
		return err;
	}
	err = ftruncate(fd, (off_t)size) ? -errno : 0;
	if (err)
		br_why(why, why_len, "%s: %s", path, strerror(-err));
	if (!err)
		err = br_super_geometry(size, seg_size, buf_size, &sb, why, why_len);
	if (!err) {
		uuid_generate(sb.uuid);
		err = br_format(fd, &sb);
		if (err)
			br_why(why, why_len, "writing %s: %s", path, strerror(-err));
	}
	close(fd);
	return err;
}
