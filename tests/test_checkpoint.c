/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/checkpoint: checkpoint + reopen gives the identical tree; crash
 * copies taken after a checkpoint recover what was fsync'd; a damaged
 * newest checkpoint falls back to the older slot; roll-forward reads only
 * the tail; writers keep running while checkpoints are taken, and the
 * result reopens identically; how long writers are blocked (printed).
 *
 * Images are created in a temporary directory (brtest.h: under
 * $BR_TEST_DIR, default /var/tmp, removed at exit).  No io_uring:
 * exit 77.  The tree helpers are those of test_fsys.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "brtest.h"
#include "rng.h"
#include <liburing.h>
#include <uuid/uuid.h>
#include "checkpoint.h"
#include "fsck.h"
#include "fsys_int.h"
#include "segment.h"

#include "crc32c.h"
#include "fsys.h"
#include "super.h"

#define IMG_SIZE (512ull << 20)
#define ROOT 1

#define FSTEST_NAME "test_ckpt"

static struct br_fs *mount_img(const char *path);

#include "fstest.h"

static struct br_fs *mount_opt(const char *path, uint64_t bytes, uint32_t secs)
{
	struct br_fs_options o = { .root_uid = 1000, .root_gid = 1000,
				   .ckpt_bytes = bytes, .ckpt_secs = secs };
	struct br_fs *fs = NULL;
	char why[256] = "";
	int err = br_fs_open(path, &o, &fs, why, sizeof(why));

	if (err)
		fprintf(stderr, "br_fs_open: %s (%d)\n", why, err);
	assert_int_equal(err, 0);
	return fs;
}

static struct br_fs *mount_img(const char *path)
{
	return mount_opt(path, UINT64_MAX, UINT32_MAX);
}


static struct br_ckpt_stats stats(struct br_fs *fs)
{
	struct br_ckpt_stats st;

	br_ckpt_stats(fs, &st);
	return st;
}

/* Every kind of inode and attribute a checkpoint must carry. */
static void populate(struct br_fs *fs, int seed)
{
	uint8_t *b = malloc(3u << 20);
	uint64_t d, e, f, g;
	struct stat st;
	char name[64];

	snprintf(name, sizeof(name), "dir%d", seed);
	d = mkdir_(fs, ROOT, name);
	e = mkdir_(fs, d, "sub");
	f = mkfile(fs, d, "big");
	fill_pattern(b, 3u << 20, (uint64_t)seed);
	write_all(fs, f, b, 3u << 20, 0);		/* several chunks */
	write_all(fs, f, b, 1000, (5u << 20) + 17);	/* a hole before */
	write_all(fs, f, b + 7, 300, 4096);		/* an overwrite */
	g = mkfile(fs, e, "small");
	write_all(fs, g, b, 10, 0);
	assert_int_equal(br_fs_link(fs, g, d, "hardlink", &st), 0);
	assert_int_equal(br_fs_symlink(fs, d, "sym", "sub/small", &cred, &st), 0);
	assert_int_equal(br_fs_mknod(fs, d, "fifo", S_IFIFO | 0600, 0, &cred, &st), 0);
	assert_int_equal(br_fs_setxattr(fs, g, "user.a", "value-a", 7, 0), 0);
	assert_int_equal(br_fs_setxattr(fs, d, "user.empty", "", 0, 0), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		write_all(fs, mkfile(fs, e, name), b + i, (size_t)i * 100 + 1, 0);
	}
	for (int i = 0; i < 40; i += 3) {
		snprintf(name, sizeof(name), "f%03d", i);
		assert_int_equal(br_fs_unlink(fs, e, name), 0);
	}
	assert_int_equal(br_fs_rename(fs, e, "f001", d, "moved", 0), 0);
	{
		struct br_setattr sa = { .valid = BR_SET_SIZE, .size = 2u << 20 };

		assert_int_equal(br_fs_setattr(fs, f, &sa, NULL), 0);
	}
	free(b);
}

static void assert_same(const char *a, const char *b)
{
	if (strcmp(a, b))
		fprintf(stderr, "before:\n%s\nafter:\n%s\n", a, b);
	assert_string_equal(a, b);
}

/* ---- tests ---- */

static void test_checkpoint_then_reopen_gives_the_identical_tree(void **state)
{
	struct br_fs *fs = *state;
	struct br_ckpt_stats st;
	char *a, *b;

	populate(fs, 1);
	assert_int_equal(br_ckpt_write(fs), 0);
	populate(fs, 2);	/* and a tail after it */
	assert_int_equal(br_ckpt_write(fs), 0);
	st = stats(fs);
	assert_int_equal(st.written, 2);
	assert_true(st.last_inodes > 60);
	a = snapshot(fs);
	fs = remount(state);	/* close writes a third */
	st = stats(fs);
	assert_int_equal(st.loaded_gen, 4);	/* mkfs slot 1, then 2, 3, 4 */
	assert_false(st.fallback);
	assert_int_equal(st.tail_records, 0);
	assert_int_equal(st.usage_mismatch, 0);
	b = snapshot(fs);
	assert_same(a, b);
	free(b);
	/* nothing changed: a second close writes nothing, the tree stays */
	fs = remount(state);
	assert_int_equal(stats(fs).loaded_gen, 4);
	b = snapshot(fs);
	assert_same(a, b);
	free(a);
	free(b);
}

static void test_crash_after_checkpoint_recovers_everything_fsynced(void **state)
{
	struct br_fs *fs = *state, *fs2;
	uint8_t b[70000];
	char copy[4200], *a, *c;
	uint64_t d, f;

	populate(fs, 1);
	assert_int_equal(br_ckpt_write(fs), 0);
	d = mkdir_(fs, ROOT, "after");
	f = mkfile(fs, d, "file");
	fill_pattern(b, sizeof(b), 9);
	write_all(fs, f, b, sizeof(b), 0);
	assert_int_equal(br_fs_rename(fs, ROOT, "dir1", d, "dir1-moved", 0), 0);
	assert_int_equal(br_fs_fsync(fs, f, false), 0);
	a = snapshot(fs);
	snprintf(copy, sizeof(copy), "%s.crash", img);
	copy_image(img, copy);		/* the power cut: no final checkpoint */
	fs2 = mount_img(copy);
	assert_true(stats(fs2).loaded_gen >= 2);
	assert_true(stats(fs2).tail_records >= 4);
	c = snapshot(fs2);
	assert_same(a, c);
	check_read(fs2, ino_of(fs2, ino_of(fs2, ROOT, "after"), "file"), b,
		   sizeof(b), 0);
	assert_int_equal(br_fs_close(fs2), 0);
	unlink(copy);
	free(a);
	free(c);
}

/* Flip a byte of the newest checkpoint's blob: its first bytes (the blob
 * magic) lie in the first CKPT_DATA record after the slot's roll point. */
static void damage_newest_checkpoint(const char *path)
{
	static const uint8_t magic[4] = { 'B', 'C', 'K', 'P' };
	uint8_t *b = malloc(8u << 20);
	struct br_super sb;
	struct br_slot s;
	uint8_t *hit;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(br_super_read(fd, &sb), 0);
	assert_int_equal(br_slot_read_newest(fd, &sb, &s), 0);
	assert_true(s.ckpt_addr != 0);
	assert_int_equal(pread(fd, b, 8u << 20, (off_t)s.roll_addr), 8u << 20);
	hit = memmem(b, 8u << 20, magic, 4);
	assert_non_null(hit);
	hit[8] ^= 0x40;		/* the blob's generation */
	assert_int_equal(pwrite(fd, hit, 16, (off_t)(s.roll_addr + (uint64_t)(hit - b))), 16);
	close(fd);
	free(b);
}

/* fsck's findings, as text ("level message" lines). */
struct msgs {
	char text[16384];
	size_t len;
};

static void collect_msg(void *ctx, int level, const char *msg)
{
	struct msgs *m = ctx;
	int n = snprintf(m->text + m->len, sizeof(m->text) - m->len, "%d %s\n",
			 level, msg);

	if (n > 0 && m->len + (size_t)n < sizeof(m->text))
		m->len += (size_t)n;
}

static struct br_fsck_result fsck(const char *path, bool repair, struct msgs *m)
{
	struct br_fsck_opts o = { .repair = repair, .report = collect_msg, .ctx = m };
	struct br_fsck_result r;

	memset(m, 0, sizeof(*m));
	assert_int_equal(br_fsck_run(path, &o, &r), 0);
	return r;
}

static void test_damaged_newest_checkpoint_falls_back_to_the_older_slot(void **state)
{
	struct br_fs *fs = *state, *fs2;
	char copy[4200], *a, *c;
	struct br_ckpt_stats st;
	struct br_fsck_result r;
	struct msgs m;
	uint64_t older;

	populate(fs, 1);
	assert_int_equal(br_ckpt_write(fs), 0);
	older = stats(fs).last_gen;
	populate(fs, 2);
	/* everything so far lies in buffers before the next cut's buffer */
	assert_int_equal(br_fs_syncfs(fs), 0);
	a = snapshot(fs);
	assert_int_equal(br_ckpt_write(fs), 0);
	populate(fs, 3);		/* lost: it lies after the damage */
	assert_int_equal(br_fs_syncfs(fs), 0);
	snprintf(copy, sizeof(copy), "%s.torn", img);
	copy_image(img, copy);
	damage_newest_checkpoint(copy);
	/* fsck says so (the mount alone would not) */
	r = fsck(copy, false, &m);
	assert_int_equal(r.errors, 1);
	assert_non_null(strstr(m.text, "newest checkpoint does not load"));
	fs2 = mount_img(copy);
	st = stats(fs2);
	assert_true(st.fallback);
	assert_int_equal(st.loaded_gen, older);
	c = snapshot(fs2);
	assert_same(a, c);
	/* the next checkpoint overwrites the damaged slot and reopens */
	assert_int_equal(br_fs_close(fs2), 0);
	fs2 = mount_img(copy);
	st = stats(fs2);
	assert_false(st.fallback);
	assert_true(st.loaded_gen > older + 1);
	free(c);
	c = snapshot(fs2);
	assert_same(a, c);
	assert_int_equal(br_fs_close(fs2), 0);
	r = fsck(copy, false, &m);
	assert_int_equal(r.errors, 0);
	/* fsck -y replaces it by a new checkpoint itself */
	copy_image(img, copy);
	damage_newest_checkpoint(copy);
	r = fsck(copy, true, &m);
	assert_int_equal(r.fixed, 1);
	r = fsck(copy, false, &m);
	assert_int_equal(r.errors, 0);
	fs2 = mount_img(copy);
	assert_false(stats(fs2).fallback);
	free(c);
	c = snapshot(fs2);
	assert_same(a, c);
	assert_int_equal(br_fs_close(fs2), 0);
	unlink(copy);
	free(a);
	free(c);
}

/* The older slot's roll-forward point, as mount would use it. */
static struct br_slot older_slot(int fd, const struct br_super *sb)
{
	struct br_slot s[2];
	uint8_t blk[BR_BLOCK_SIZE];

	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(pread(fd, blk, sizeof(blk),
				       (off_t)(BR_BLOCK_SIZE * (i + 1))),
				 sizeof(blk));
		assert_int_equal(br_slot_decode(sb, blk, &s[i]), 0);
	}
	return s[0].seq < s[1].seq ? s[0] : s[1];
}

static void test_fallback_that_cannot_reach_the_newest_cut_is_refused(void **state)
{
	struct br_fs *fs = *state, *fs2 = NULL;
	struct br_super sb;
	struct br_slot old, newest;
	uint8_t zero[BR_BLOCK_SIZE] = { 0 };
	char copy[4200], why[256] = "";
	struct br_fs_options o = { .root_uid = 1000, .root_gid = 1000,
				   .ckpt_bytes = UINT64_MAX,
				   .ckpt_secs = UINT32_MAX };
	int fd;

	populate(fs, 1);
	assert_int_equal(br_ckpt_write(fs), 0);
	populate(fs, 2);
	assert_int_equal(br_ckpt_write(fs), 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	snprintf(copy, sizeof(copy), "%s.gone", img);
	copy_image(img, copy);
	damage_newest_checkpoint(copy);
	/* ... and a piece of the log between the two cuts is gone too, as
	 * after its segment was reused or discarded */
	fd = open(copy, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(br_super_read(fd, &sb), 0);
	old = older_slot(fd, &sb);
	assert_int_equal(br_slot_read_newest(fd, &sb, &newest), 0);
	/* Walk the chain from the older roll point (format.h's rule) to a
	 * buffer of populate(2)'s data, two before the newest cut: after the
	 * older checkpoint, before the newer one. */
	for (uint64_t addr = old.roll_addr, seq = old.roll_seq;; seq++) {
		struct br_buf_header h, n;
		uint64_t seg_end = addr - (addr - sb.log_start) % sb.seg_size +
				   sb.seg_size, next;

		assert_int_equal(pread(fd, &h, sizeof(h), (off_t)addr), sizeof(h));
		assert_int_equal(br_le64_get(h.seq), seq);
		if (seq == newest.roll_seq - 2) {
			assert_int_equal(pwrite(fd, zero, sizeof(zero),
						(off_t)addr), sizeof(zero));
			break;
		}
		next = addr + br_le32_get(h.span);
		if (next + BR_BLOCK_SIZE > seg_end ||
		    pread(fd, &n, sizeof(n), (off_t)next) != sizeof(n) ||
		    br_le64_get(n.seq) != seq + 1)
			next = br_le64_get(h.next_seg);
		addr = next;
	}
	close(fd);
	/* Mounting the older state would lose populate(2)'s files without a
	 * word: refuse, and say why. */
	assert_int_equal(br_fs_open(copy, &o, &fs2, why, sizeof(why)),
			 BR_ERR_CORRUPT);
	assert_null(fs2);
	assert_non_null(strstr(why, "cannot reach"));
	unlink(copy);
}

static void test_roll_forward_replays_only_the_tail(void **state)
{
	struct br_fs *fs = *state, *fs2;
	uint8_t *b = malloc(1u << 20);
	struct br_fs_info info;
	char copy[4200], *a, *c;
	uint64_t f, full_buffers;

	f = mkfile(fs, ROOT, "bulk");
	for (int i = 0; i < 48; i++) {	/* ~48 buffers of log */
		fill_pattern(b, 1u << 20, (uint64_t)i);
		write_all(fs, f, b, 1u << 20, (uint64_t)i << 20);
	}
	fs = remount(state);	/* with a checkpoint: replays nothing */
	br_fs_info(fs, &info);
	full_buffers = info.replayed_buffers;
	assert_true(stats(fs).tail_records == 0);
	assert_true(full_buffers <= 2);
	write_all(fs, mkfile(fs, ROOT, "tail"), b, 5000, 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	a = snapshot(fs);
	snprintf(copy, sizeof(copy), "%s.tail", img);
	copy_image(img, copy);
	fs2 = mount_img(copy);
	br_fs_info(fs2, &info);
	printf("roll-forward: %llu buffers scanned after the checkpoint (log holds > 48)\n",
	       (unsigned long long)info.replayed_buffers);
	assert_true(info.replayed_buffers >= 1 && info.replayed_buffers <= 4);
	assert_int_equal(stats(fs2).tail_records, 3);	/* create, data, times */
	c = snapshot(fs2);
	assert_same(a, c);
	assert_int_equal(br_fs_close(fs2), 0);
	unlink(copy);
	free(a);
	free(c);
	free(b);
}

struct wr_arg {
	struct br_fs *fs;
	uint64_t dir;
	int id;
	_Atomic int *stop;
};

/* Creates, writes, renames and unlinks in its own directory until told. */
static void *writer(void *p)
{
	struct wr_arg *a = p;
	uint8_t b[20000];
	char name[32], name2[32];
	struct stat st;

	for (int i = 0; !atomic_load(a->stop) && i < 2000; i++) {
		snprintf(name, sizeof(name), "w%d", i % 300);
		if (br_fs_mknod(a->fs, a->dir, name, S_IFREG | 0644, 0, &cred, &st) == 0) {
			fill_pattern(b, sizeof(b), (uint64_t)a->id * 100000 + (uint64_t)i);
			if (br_fs_write(a->fs, st.st_ino, b, (size_t)(i % 20000) + 1,
					(uint64_t)(i % 7) * 4096) <= 0)
				return (void *)1;
			br_fs_forget(a->fs, st.st_ino, 1);
		}
		if (i % 5 == 4) {
			snprintf(name2, sizeof(name2), "r%d", i % 50);
			br_fs_rename(a->fs, a->dir, name, a->dir, name2, 0);
		}
		if (i % 7 == 6) {
			snprintf(name, sizeof(name), "w%d", (i * 13) % 300);
			br_fs_unlink(a->fs, a->dir, name);
		}
	}
	return NULL;
}

static void test_concurrent_writers_during_checkpoints_reopen_identically(void **state)
{
	struct br_fs *fs = *state, *fs2;
	struct wr_arg a[4];
	pthread_t t[4];
	_Atomic int stop = 0;
	char name[16], copy[4200], *s1, *s2;
	struct br_ckpt_stats st;
	int n = 0;

	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		a[i] = (struct wr_arg){ fs, mkdir_(fs, ROOT, name), i, &stop };
		assert_int_equal(pthread_create(&t[i], NULL, writer, &a[i]), 0);
	}
	for (; n < 12; n++) {
		assert_int_equal(br_ckpt_write(fs), 0);
		usleep(20000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++) {
		void *ret;

		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	st = stats(fs);
	printf("checkpoints under load: %llu, writers blocked max %.3f ms, last %.3f ms (%llu inodes, %llu KiB blob)\n",
	       (unsigned long long)st.written, st.max_block_ns / 1e6,
	       st.last_block_ns / 1e6, (unsigned long long)st.last_inodes,
	       (unsigned long long)st.last_blob_bytes >> 10);
	assert_int_equal(st.written, 12);
	assert_int_equal(br_fs_syncfs(fs), 0);
	s1 = snapshot(fs);
	/* a crash now: the newest checkpoint + its tail */
	snprintf(copy, sizeof(copy), "%s.conc", img);
	copy_image(img, copy);
	fs2 = mount_img(copy);
	s2 = snapshot(fs2);
	assert_same(s1, s2);
	assert_int_equal(br_fs_close(fs2), 0);
	unlink(copy);
	free(s2);
	/* and a clean unmount */
	fs = remount(state);
	s2 = snapshot(fs);
	assert_same(s1, s2);
	free(s1);
	free(s2);
}

/* The blob a checkpoint writes is the map at its cut, although the tree
 * changes while the blob is being made (checkpoint.h, step 3): changes
 * right after the cut and after the walk's first batch, to inodes the walk
 * has and has not reached, inodes freed under its cursor, new ones. */
struct cow_ctx {
	struct br_fs *fs;
	uint64_t many, d, big;
	int calls;
};

static void cow_unlink_range(struct br_fs *fs, uint64_t dir, int from, int to)
{
	char name[32];

	for (int i = from; i < to; i++) {
		snprintf(name, sizeof(name), "f%04d", i);
		assert_int_equal(br_fs_unlink(fs, dir, name), 0);
	}
}

static void cow_changes(void *p, int at)
{
	struct cow_ctx *x = p;
	struct br_fs *fs = x->fs;
	uint8_t b[8192];
	struct stat st;

	x->calls++;
	fill_pattern(b, sizeof(b), 99u + (unsigned)at);
	if (at == 0) {		/* the walk has not started */
		struct br_setattr trunc = { .valid = BR_SET_SIZE, .size = 3 };
		struct br_setattr chmod_ = { .valid = BR_SET_MODE, .mode = 0600 };

		write_all(fs, ino_of(fs, x->many, "f0100"), b, 5000, 10);
		write_all(fs, x->big, b, 8192, 1u << 20);
		assert_int_equal(br_fs_setattr(fs, ino_of(fs, x->many, "f0200"), &trunc, NULL), 0);
		assert_int_equal(br_fs_setattr(fs, ino_of(fs, x->many, "f0700"), &chmod_, NULL), 0);
		cow_unlink_range(fs, x->many, 300, 310);
		assert_int_equal(br_fs_rename(fs, x->many, "f0400", x->d, "moved2", 0), 0);
		write_all(fs, mkfile(fs, x->many, "new1"), b, 100, 0);
		assert_int_equal(br_fs_setxattr(fs, ino_of(fs, x->many, "f0500"), "user.x", "y", 1, 0), 0);
		assert_int_equal(br_fs_link(fs, ino_of(fs, x->many, "f0600"), x->d, "link2", &st), 0);
		mkdir_(fs, x->d, "newdir");
	} else if (at == 1) {	/* the cursor is somewhere in "many" */
		cow_unlink_range(fs, x->many, 0, 10);
		cow_unlink_range(fs, x->many, 1000, 4500);
		assert_int_equal(br_fs_rename(fs, x->many, "f4999", x->many, "f4998", 0), 0);
		write_all(fs, ino_of(fs, x->many, "f4900"), b, 300, 0);
		assert_int_equal(br_fs_removexattr(fs, ino_of(fs, x->many, "f0500"), "user.x"), 0);
	}
}

static void test_checkpoint_is_the_map_at_its_cut_while_writers_change_it(void **state)
{
	struct br_fs *fs = *state, *fs2;
	struct br_fs_options ro = { .read_only = true, .ckpt_only = true };
	struct cow_ctx x = { .fs = fs };
	struct br_ckpt_stats st;
	char name[32], copy[4200], why[256], *at_cut, *at_end, *s;
	uint8_t b[256];

	populate(fs, 1);
	x.d = ino_of(fs, ROOT, "dir1");
	x.big = ino_of(fs, x.d, "big");
	x.many = mkdir_(fs, ROOT, "many");
	for (int i = 0; i < 5000; i++) {
		uint64_t f;

		snprintf(name, sizeof(name), "f%04d", i);
		f = mkfile(fs, x.many, name);
		fill_pattern(b, sizeof(b), (uint64_t)i);
		write_all(fs, f, b, (size_t)(i % 200) + 1, 0);
		br_fs_forget(fs, f, 1);	/* unlink frees it at once */
	}
	at_cut = snapshot(fs);	/* reads: atime changes before the cut */
	br_ckpt_snap_hook(fs, cow_changes, &x);
	assert_int_equal(br_ckpt_write(fs), 0);
	br_ckpt_snap_hook(fs, NULL, NULL);
	st = stats(fs);
	printf("snapshot: %llu inodes, %llu put in by writers (longest %.3f ms), cut %.3f ms, longest batch %.3f ms, %d hook calls\n",
	       (unsigned long long)st.last_inodes,
	       (unsigned long long)st.last_cow_inodes, st.last_cow_max_ns / 1e6,
	       st.last_cut_ns / 1e6, st.last_walk_batch_ns / 1e6, x.calls);
	assert_true(x.calls >= 3);	/* at 0, after batch 1, after the last */
	assert_true(st.last_cow_inodes >= 10);
	assert_true(st.last_inodes > 5000);
	at_end = snapshot(fs);
	assert_true(strcmp(at_cut, at_end) != 0);
	assert_int_equal(br_fs_syncfs(fs), 0);

	snprintf(copy, sizeof(copy), "%s.cow", img);
	copy_image(img, copy);
	/* the checkpoint alone: exactly the tree at the cut */
	assert_int_equal(br_fs_open(copy, &ro, &fs2, why, sizeof(why)), 0);
	assert_int_equal(stats(fs2).loaded_gen, st.last_gen);
	s = snapshot(fs2);
	assert_same(at_cut, s);
	free(s);
	assert_int_equal(br_fs_close(fs2), 0);
	/* with its tail rolled forward: the tree now */
	fs2 = mount_img(copy);
	assert_true(stats(fs2).tail_records > 3500);
	assert_int_equal(stats(fs2).usage_mismatch, 0);
	s = snapshot(fs2);
	assert_same(at_end, s);
	free(s);
	assert_int_equal(br_fs_close(fs2), 0);
	unlink(copy);
	free(at_cut);
	free(at_end);
}

static void test_background_thread_checkpoints_by_bytes_and_by_time(void **state)
{
	struct br_fs *fs;
	uint8_t *b = malloc(1u << 20);
	uint64_t f;

	assert_int_equal(br_fs_close(*state), 0);
	*state = fs = mount_opt(img, 4u << 20, UINT32_MAX);	/* by size */
	f = mkfile(fs, ROOT, "f");
	for (int i = 0; i < 8; i++)
		write_all(fs, f, b, 1u << 20, (uint64_t)i << 20);
	assert_int_equal(br_fs_syncfs(fs), 0);
	for (int i = 0; i < 50 && stats(fs).written == 0; i++)
		usleep(100000);
	assert_true(stats(fs).written >= 1);
	assert_int_equal(br_fs_close(fs), 0);
	*state = fs = mount_opt(img, UINT64_MAX, 1);		/* by time */
	write_all(fs, f, b, 100, 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	for (int i = 0; i < 40 && stats(fs).written == 0; i++)
		usleep(100000);
	assert_int_equal(stats(fs).written, 1);
	usleep(1500000);	/* idle: no further checkpoint */
	assert_int_equal(stats(fs).written, 1);
	free(b);
}

/*
 * The default size trigger waits for BR_CKPT_LOG_PER_BLOB log bytes per
 * blob byte when that is more than its floor (lowered here to 512 KiB, as
 * 256 MiB would take long to write): a fragmented file's blob is not
 * rewritten every 256 MiB whatever its size.  A given ckpt_bytes is kept
 * as is (the test above).
 */
/* A file "frag" of every other page of `pages` (one extent each), then
 * a close (which writes the blob) and a mount with the default size
 * trigger and ckpt_secs `secs`; *blob gets the loaded blob's size. */
static struct br_fs *fragment_and_remount(struct br_fs *fs, uint32_t pages,
					  uint32_t secs, uint64_t *blob)
{
	const uint32_t pg = 4096;
	uint8_t *b = calloc(1, pg);
	uint64_t f = mkfile(fs, ROOT, "frag");

	assert_non_null(b);
	for (uint32_t p = 0; p < pages; p += 2)
		write_all(fs, f, b, pg, (uint64_t)p * pg);
	assert_int_equal(br_fs_fsync(fs, f, false), 0);
	assert_int_equal(br_fs_close(fs), 0);
	free(b);
	fs = mount_opt(img, 0, secs);
	*blob = stats(fs).loaded_blob_bytes;
	return fs;
}

static void test_default_size_trigger_scales_with_the_blob(void **state)
{
	struct br_fs *fs = *state;
	uint8_t *b = calloc(1, 1u << 20);
	uint64_t g, blob, every, off = 0;

	assert_non_null(b);
	br_ckpt_bytes_default = 512u << 10;	/* teardown_bytes_default */
	assert_int_equal(br_ckpt_every_bytes(4u << 20, 1u << 20), 4u << 20);
	assert_int_equal(br_ckpt_every_bytes(0, 1000), 512u << 10);
	assert_int_equal(br_ckpt_every_bytes(0, 1ull << 40),
			 BR_CKPT_BYTES_SCALED_MAX);
	*state = fs = fragment_and_remount(fs, 8192, UINT32_MAX, &blob);
	assert_true(blob > 0);
	every = br_ckpt_every_bytes(0, blob);
	fprintf(stderr, "blob %" PRIu64 " bytes: a checkpoint every %" PRIu64
		" bytes of log\n", blob, every);
	assert_int_equal(every, blob * BR_CKPT_LOG_PER_BLOB);
	assert_true(every >= (4u << 20));
	/* 4x the floor: no checkpoint (the thread looks 5 times a second) */
	g = mkfile(fs, ROOT, "g");
	for (; off < (2u << 20); off += 1u << 20)
		write_all(fs, g, b, 1u << 20, off);
	assert_int_equal(br_fs_syncfs(fs), 0);
	usleep(1500000);
	assert_int_equal(stats(fs).written, 0);
	/* past the scaled gap: one */
	for (; off < every + (1u << 20); off += 1u << 20)
		write_all(fs, g, b, 1u << 20, off);
	assert_int_equal(br_fs_syncfs(fs), 0);
	for (int i = 0; i < 50 && stats(fs).written == 0; i++)
		usleep(100000);
	assert_true(stats(fs).written >= 1);
	free(b);
}

/*
 * The default time trigger waits for as much log as the newest blob: a
 * trickle of changes does not rewrite the whole map every 30 s (lowered
 * to 1 s here).  A given ckpt_secs waits for nothing else.
 */
static void test_default_time_trigger_waits_for_a_blob_of_log(void **state)
{
	struct br_fs *fs = *state;
	const uint32_t pg = 4096;
	uint8_t *b = calloc(1, 1u << 20);
	uint64_t g, blob;

	assert_non_null(b);
	br_ckpt_secs_default = 1;	/* teardown_bytes_default */
	*state = fs = fragment_and_remount(fs, 16384, 0, &blob);
	fprintf(stderr, "blob %" PRIu64 " bytes\n", blob);
	assert_true(blob >= 32u << 10);
	/* a page, synced: a few KiB of log, under the blob */
	g = mkfile(fs, ROOT, "g");
	write_all(fs, g, b, pg, 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	usleep(2500000);
	assert_int_equal(stats(fs).written, 0);
	/* as much log as the blob: one, a second after the first change */
	for (uint64_t off = 0; off <= blob; off += 64u << 10)
		write_all(fs, g, b, 64u << 10, off);
	assert_int_equal(br_fs_syncfs(fs), 0);
	for (int i = 0; i < 50 && stats(fs).written == 0; i++)
		usleep(100000);
	assert_true(stats(fs).written >= 1);
	/* given, 1 s is 1 s: a page is enough */
	assert_int_equal(br_fs_close(fs), 0);
	*state = fs = mount_opt(img, 0, 1);
	write_all(fs, g, b, pg, 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	for (int i = 0; i < 50 && stats(fs).written == 0; i++)
		usleep(100000);
	assert_true(stats(fs).written >= 1);
	free(b);
}

/* How long writers wait while a checkpoint of many inodes is taken. */
static void test_writers_are_blocked_briefly_while_a_checkpoint_is_taken(void **state)
{
	struct br_fs *fs = *state;
	struct br_ckpt_stats st;
	char name[32];
	struct stat sst;
	uint64_t d = 0;

	for (int i = 0; i < 50000; i++) {
		if (i % 1000 == 0) {
			snprintf(name, sizeof(name), "d%d", i / 1000);
			d = mkdir_(fs, ROOT, name);
		}
		snprintf(name, sizeof(name), "file-%d", i);
		assert_int_equal(br_fs_mknod(fs, d, name, S_IFREG | 0644, 0, &cred, &sst), 0);
		assert_int_equal(br_fs_write(fs, sst.st_ino, name, strlen(name), 0),
				 (ssize_t)strlen(name));
		br_fs_forget(fs, sst.st_ino, 1);
	}
	assert_int_equal(br_ckpt_write(fs), 0);
	st = stats(fs);
	printf("ckpt inodes=%llu blob_mib=%.1f block_ms=%.2f (%.1f ms per GiB of blob) total_ms=%.1f\n",
	       (unsigned long long)st.last_inodes, st.last_blob_bytes / 1048576.0,
	       st.last_block_ns / 1e6,
	       st.last_block_ns / 1e6 / (st.last_blob_bytes / 1073741824.0),
	       st.last_total_ns / 1e6);
	assert_true(st.last_inodes > 50000);
	/* The block time is printed, not asserted: timing belongs to the
	 * benchmark (bench-mount prints bench=ckpt-block); sanitizers or a
	 * loaded machine would make any bound here flaky. */
	fs = remount(state);
	assert_int_equal(stats(fs).tail_records, 0);
	assert_true(ino_of(fs, ino_of(fs, ROOT, "d49"), "file-49999") != 0);
}

/* ---- fsck ---- */

static void test_fsck_passes_a_clean_image_and_refuses_to_repair_a_mounted_one(void **state)
{
	struct br_fsck_opts o = { .repair = true };
	struct br_fsck_result r;
	struct msgs m;

	populate(*state, 1);
	assert_int_equal(br_fs_syncfs(*state), 0);
	r = fsck(img, false, &m);	/* -n on a mounted image is allowed */
	assert_int_equal(r.errors, 0);
	assert_int_equal(br_fsck_run(img, &o, &r), -EBUSY);
	assert_int_equal(br_fs_close(*state), 0);
	*state = NULL;
	r = fsck(img, false, &m);
	if (r.errors)
		fprintf(stderr, "%s", m.text);
	assert_int_equal(r.errors, 0);
	assert_true(r.inodes > 30 && r.buffers > 0);
}

static void test_fsck_finds_and_repairs_injected_inconsistencies(void **state)
{
	struct br_fs *fs = *state;
	uint64_t d, moved, big;
	struct br_inode *din, *bin;
	struct br_fsck_result r;
	struct msgs m;
	char name[32];

	populate(fs, 1);
	d = ino_of(fs, ROOT, "dir1");
	moved = ino_of(fs, d, "moved");
	big = ino_of(fs, d, "big");
	/* the damage, straight into the map, then made durable by a
	 * checkpoint: an orphan, a wrong link count, a dangling entry */
	pthread_rwlock_wrlock(&fs->map_lock);
	din = br_map_inode_find(&fs->map, d);
	br_dir_remove(&din->dir, br_dir_find(&din->dir, "moved", 5));
	bin = br_map_inode_find(&fs->map, big);
	bin->nlink = 3;
	assert_int_equal(br_dir_add(&din->dir, "ghost", 5, 999999, S_IFREG, NULL), 0);
	pthread_rwlock_unlock(&fs->map_lock);
	assert_int_equal(br_ckpt_write(fs), 0);
	assert_int_equal(br_fs_close(fs), 0);
	*state = NULL;

	r = fsck(img, false, &m);
	printf("%s", m.text);
	assert_int_equal(r.errors, 3);
	assert_int_equal(r.fixed, 0);
	assert_non_null(strstr(m.text, "is not reachable from the root"));
	assert_non_null(strstr(m.text, "link count 3, should be 1"));
	assert_non_null(strstr(m.text, "names missing inode 999999"));

	r = fsck(img, true, &m);
	printf("%s", m.text);
	assert_int_equal(r.errors, 3);
	assert_int_equal(r.fixed, 3);	/* exit 1 */
	r = fsck(img, false, &m);
	if (r.errors)
		fprintf(stderr, "%s", m.text);
	assert_int_equal(r.errors, 0);	/* exit 0 */

	*state = fs = mount_img(img);
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)moved);
	assert_int_equal(ino_of(fs, ino_of(fs, ROOT, "lost+found"), name), moved);
	assert_int_equal(ino_of(fs, d, "ghost"), 0);
}

static void test_fsck_reports_a_log_that_does_not_load(void **state)
{
	struct br_fs *fs = *state;
	struct br_rec_link rec;
	char buf[sizeof(rec) + 8], copy[4200];
	struct br_fsck_result r;
	struct msgs m;

	populate(fs, 1);
	/* a LINK record for an inode that never existed */
	memset(&rec, 0, sizeof(rec));
	rec.h.type = br_le16_put(BR_REC_LINK);
	rec.h.len = br_le32_put(sizeof(rec) + 4);
	rec.h.ino = br_le64_put(777777);
	rec.parent = br_le64_put(ROOT);
	rec.name_len = br_le16_put(4);
	memcpy(buf, &rec, sizeof(rec));
	memcpy(buf + sizeof(rec), "evil", 4);
	assert_int_equal(br_store_append(fs->store, buf, sizeof(rec) + 4, NULL), 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	snprintf(copy, sizeof(copy), "%s.bad", img);
	copy_image(img, copy);
	r = fsck(copy, false, &m);
	printf("%s", m.text);
	assert_int_equal(r.errors, 1);
	assert_non_null(strstr(m.text, "does not load"));
	assert_non_null(strstr(m.text, "contradicts"));
	r = fsck(copy, true, &m);
	assert_true(r.errors > r.fixed);	/* exit 4 */
	unlink(copy);
}

/*
 * Blob version 3 packs extents (format.h): a file fragmented by 4 KiB
 * overwrites at random log addresses costs ~8 bytes an extent where
 * version 2 took 24, and the blob reloads to the same tree and the same
 * segment usage.  The first checkpoint sets INCOMPAT_CKPT_PACKED on disk
 * (an older bringfs refuses the image).  The size guess the user reserve
 * is made of is the newest blob (written or loaded) and what the map
 * gained since, not the map counted at 24 bytes an extent.
 */
static void test_packed_extents_are_small_and_reload(void **state)
{
	struct br_fs *fs = *state;
	const uint32_t pages = 4096, pg = 4096;
	uint8_t *b = malloc((size_t)pages * pg);
	uint64_t f, e0, e1, blob0, blob1, guess, seed = 7;
	struct br_ckpt_stats st;
	char *a, *c;

	assert_non_null(b);
	fill_pattern(b, (size_t)pages * pg, 3);
	f = mkfile(fs, ROOT, "frag");
	write_all(fs, f, b, (size_t)pages * pg, 0);
	assert_int_equal(br_fs_fsync(fs, f, false), 0);
	assert_int_equal(br_ckpt_write(fs), 0);
	assert_true(fs->sb.feat_incompat & BR_FEATURE_INCOMPAT_CKPT_PACKED);
	e0 = atomic_load(&fs->segs->extents);
	blob0 = stats(fs).last_blob_bytes;
	/* every other page, in a random order: one extent each, at
	 * addresses that jump around the log */
	for (uint32_t i = 0; i < pages / 2; i++) {
		uint32_t p = (uint32_t)(br_xorshift64(&seed) % pages);

		write_all(fs, f, b + (size_t)p * pg, pg, (uint64_t)p * pg);
	}
	assert_int_equal(br_fs_fsync(fs, f, false), 0);
	assert_int_equal(br_ckpt_write(fs), 0);
	e1 = atomic_load(&fs->segs->extents);
	blob1 = stats(fs).last_blob_bytes;
	assert_true(e1 > e0 + pages / 4);
	fprintf(stderr, "%" PRIu64 " extents more: blob %" PRIu64
		" -> %" PRIu64 " bytes (%.1f a extent); guess %" PRIu64 "\n",
		e1 - e0, blob0, blob1, (double)(blob1 - blob0) / (double)(e1 - e0),
		br_ckpt_guess(fs));
	assert_true(blob1 - blob0 <= 12 * (e1 - e0));
	/* the guess (its fixed 64 KiB aside) is the newest blob and a
	 * sixteenth while the map is as that blob holds it: the map
	 * counted whole at two bytes more an extent, a quarter more, held
	 * a second segment of reserve for a one-segment blob (90 % of
	 * 1 GiB: 3.0 MB for 1.85) */
	assert_true(br_ckpt_guess(fs) - (64u << 10) <= blob1 + blob1 / 16);
	/* and it follows what the map gains: the next blob fits in it */
	for (uint32_t i = 0; i < pages / 4; i++) {
		uint32_t p = (uint32_t)(br_xorshift64(&seed) % pages);

		write_all(fs, f, b + (size_t)p * pg, pg, (uint64_t)p * pg);
	}
	assert_int_equal(br_fs_fsync(fs, f, false), 0);
	assert_true(atomic_load(&fs->segs->extents) > e1 + pages / 16);
	guess = br_ckpt_guess(fs);
	assert_true(guess > blob1 + blob1 / 16 + (64u << 10));
	assert_int_equal(br_ckpt_write(fs), 0);
	blob1 = stats(fs).last_blob_bytes;
	assert_true(blob1 <= guess);
	a = snapshot(fs);
	fs = remount(state);
	st = stats(fs);
	assert_int_equal(st.tail_records, 0);
	assert_int_equal(st.usage_mismatch, 0);
	assert_true(fs->sb.feat_incompat & BR_FEATURE_INCOMPAT_CKPT_PACKED);
	/* the loaded blob is the base as a written one is */
	assert_true(br_ckpt_guess(fs) - (64u << 10) <= blob1 + blob1 / 16);
	c = snapshot(fs);
	assert_same(a, c);
	free(a);
	free(c);
	free(b);
}

/*
 * Images an older bringfs wrote still load: blob versions 1 (no age
 * table) and 2 hold extents unpacked, 24 bytes each, and the superblock
 * lacks INCOMPAT_CKPT_PACKED (format.h).  Nothing writes them any more
 * but br_ckpt_write_version, so a checkpoint taken with it stands in for
 * one of an older bringfs.  A fragmented file gives it many extents,
 * some still pending at the cut (their addresses are patched in after
 * it); more is written after it, so the crash copy rolls a tail forward
 * on top of the old blob.  The next checkpoint is version 3 again.
 */

/* The version of the newest slot's blob: its header lies in the first
 * CKPT_DATA record after the slot's roll point. */
static uint32_t newest_blob_version(const char *path)
{
	static const uint8_t magic[4] = { 'B', 'C', 'K', 'P' };
	const size_t max = 8u << 20;
	uint8_t *b = malloc(max), *p;
	struct br_ckpt_blob hd;
	struct br_super sb;
	struct br_slot s;
	uint32_t ver = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_non_null(b);
	assert_int_equal(br_super_read(fd, &sb), 0);
	assert_int_equal(br_slot_read_newest(fd, &sb, &s), 0);
	assert_true(s.ckpt_addr != 0);
	n = pread(fd, b, max, (off_t)s.roll_addr);
	assert_true(n > (ssize_t)sizeof(hd));
	/* file data may hold the magic too: the header also names the
	 * slot's generation */
	for (p = b; (p = memmem(p, (size_t)(b + n - p), magic, 4)); p++) {
		if ((size_t)(b + n - p) < sizeof(hd))
			break;
		memcpy(&hd, p, sizeof(hd));
		if (br_le64_get(hd.gen) == s.seq) {
			ver = br_le32_get(hd.version);
			break;
		}
	}
	close(fd);
	free(b);
	assert_true(ver != 0);
	return ver;
}

static bool has_packed_bit(const char *path)
{
	struct br_super sb;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(br_super_read(fd, &sb), 0);
	close(fd);
	return sb.feat_incompat & BR_FEATURE_INCOMPAT_CKPT_PACKED;
}

/* 4 KiB pieces of `frag` (and of its expected contents `want`)
 * overwritten at random page offsets. */
static void frag_overwrite(struct br_fs *fs, uint64_t frag, uint8_t *want,
			   uint32_t pages, uint32_t n, uint64_t *seed)
{
	uint8_t pg[4096];

	for (uint32_t i = 0; i < n; i++) {
		uint32_t at = (uint32_t)(br_xorshift64(seed) % pages);

		fill_pattern(pg, sizeof(pg), *seed);
		memcpy(want + (size_t)at * sizeof(pg), pg, sizeof(pg));
		write_all(fs, frag, pg, sizeof(pg), (uint64_t)at * sizeof(pg));
	}
}

/* fsck of `path` finds nothing */
static void fsck_clean(const char *path)
{
	struct br_fsck_result r;
	struct msgs m;

	r = fsck(path, false, &m);
	if (r.errors)
		fprintf(stderr, "%s", m.text);
	assert_int_equal(r.errors, 0);
}

/* fs2 holds the tree `a` and old/frag holds `want`, its usage table is
 * its extents', and it did not fall back to an older checkpoint */
static void same_as_before(struct br_fs *fs2, const char *a,
			   const uint8_t *want, size_t size)
{
	struct br_ckpt_stats st = stats(fs2);
	char *c = snapshot(fs2);

	assert_false(st.fallback);
	assert_int_equal(st.usage_mismatch, 0);
	assert_same(a, c);
	free(c);
	check_read(fs2, ino_of(fs2, ino_of(fs2, ROOT, "old"), "frag"), want,
		   size, 0);
}

static void older_version_loads(void **state, unsigned ver)
{
	struct br_fs *fs = *state, *fs2;
	const uint32_t pages = 1024;	/* a 4 MiB file */
	const size_t size = (size_t)pages * 4096;
	uint8_t *want = malloc(size);
	uint64_t d, frag, gen, seed = 11 + ver;
	struct br_ckpt_stats st;
	char copy[4200], *a;
	struct stat sst;

	br_ckpt_write_version = BR_CKPT_VERSION;	/* see teardown_version */
	assert_non_null(want);
	populate(fs, 1);	/* directories, xattrs, a symlink, a hole */
	d = mkdir_(fs, ROOT, "old");
	assert_int_equal(br_fs_setxattr(fs, d, "user.v", "old", 3, 0), 0);
	assert_int_equal(br_fs_symlink(fs, d, "to-frag", "frag", &cred, &sst), 0);
	frag = mkfile(fs, d, "frag");
	fill_pattern(want, size, ver);
	write_all(fs, frag, want, size, 0);
	assert_int_equal(br_fs_fsync(fs, frag, false), 0);
	/* many extents; the last ones are in the open buffer at the cut */
	frag_overwrite(fs, frag, want, pages, 600, &seed);

	br_ckpt_write_version = ver;
	assert_int_equal(br_ckpt_write(fs), 0);
	br_ckpt_write_version = BR_CKPT_VERSION;
	gen = stats(fs).last_gen;
	assert_int_equal(newest_blob_version(img), ver);
	assert_false(has_packed_bit(img));

	/* the tail the copy rolls forward on top of the old blob */
	frag_overwrite(fs, frag, want, pages, 200, &seed);
	write_all(fs, mkfile(fs, d, "after"), want, 5000, 0);
	mkdir_(fs, d, "after-dir");
	assert_int_equal(br_fs_setxattr(fs, frag, "user.after", "1", 1, 0), 0);
	assert_int_equal(br_fs_rename(fs, ROOT, "dir1", d, "dir1-moved", 0), 0);
	assert_int_equal(br_fs_syncfs(fs), 0);
	a = snapshot(fs);
	snprintf(copy, sizeof(copy), "%s.v%u", img, ver);
	copy_image(img, copy);		/* a crash: no checkpoint at close */

	fsck_clean(copy);
	fs2 = mount_img(copy);
	st = stats(fs2);
	assert_int_equal(st.loaded_gen, gen);
	assert_true(st.tail_records >= 5);
	same_as_before(fs2, a, want, size);

	/* the next checkpoint is version 3, and it loads too */
	assert_int_equal(br_ckpt_write(fs2), 0);
	assert_int_equal(newest_blob_version(copy), BR_CKPT_VERSION);
	assert_true(has_packed_bit(copy));
	gen = stats(fs2).last_gen;
	assert_int_equal(br_fs_close(fs2), 0);
	assert_int_equal(newest_blob_version(copy), BR_CKPT_VERSION);
	fs2 = mount_img(copy);
	st = stats(fs2);
	assert_true(st.loaded_gen >= gen);
	assert_int_equal(st.tail_records, 0);
	same_as_before(fs2, a, want, size);
	assert_int_equal(br_fs_close(fs2), 0);
	fsck_clean(copy);
	unlink(copy);
	free(a);
	free(want);
}

static void test_version_1_checkpoint_of_an_older_bringfs_loads(void **state)
{
	older_version_loads(state, 1);
}

static void test_version_2_checkpoint_of_an_older_bringfs_loads(void **state)
{
	older_version_loads(state, 2);
}

static int teardown_bytes_default(void **state)
{
	br_ckpt_bytes_default = BR_CKPT_BYTES_DEFAULT;
	br_ckpt_secs_default = BR_CKPT_SECS_DEFAULT;
	return teardown(state);
}

/* cmocka longjmps past a failed test's own reset: every later test
 * must write version 3 again. */
static int teardown_version(void **state)
{
	br_ckpt_write_version = BR_CKPT_VERSION;
	return teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_checkpoint_then_reopen_gives_the_identical_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_checkpoint_recovers_everything_fsynced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_newest_checkpoint_falls_back_to_the_older_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fallback_that_cannot_reach_the_newest_cut_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roll_forward_replays_only_the_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers_during_checkpoints_reopen_identically, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_is_the_map_at_its_cut_while_writers_change_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_thread_checkpoints_by_bytes_and_by_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_size_trigger_scales_with_the_blob, setup, teardown_bytes_default),
		cmocka_unit_test_setup_teardown(test_default_time_trigger_waits_for_a_blob_of_log, setup, teardown_bytes_default),
		cmocka_unit_test_setup_teardown(test_writers_are_blocked_briefly_while_a_checkpoint_is_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_passes_a_clean_image_and_refuses_to_repair_a_mounted_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_finds_and_repairs_injected_inconsistencies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_reports_a_log_that_does_not_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_packed_extents_are_small_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_1_checkpoint_of_an_older_bringfs_loads, setup, teardown_version),
		cmocka_unit_test_setup_teardown(test_version_2_checkpoint_of_an_older_bringfs_loads, setup, teardown_version),
	};

	if (!br_test_have_io_uring())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
