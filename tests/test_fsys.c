/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/fsys over a real store on a temporary image: every operation, then
 * close + open (full log replay) and a check that the tree is identical;
 * fsync durability through a copy of the image taken while mounted (what a
 * crash right after fsync leaves behind).
 *
 * Images are created in a temporary directory (brtest.h: under
 * $BR_TEST_DIR, default /var/tmp, removed at exit).  No io_uring:
 * exit 77.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "brtest.h"
#include <liburing.h>
#include <uuid/uuid.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "fsys.h"
#include "super.h"

#define IMG_SIZE (160ull << 20)
#define ROOT 1

#define FSTEST_NAME "test_fsys"

static struct br_fs *mount_img(const char *path);

#include "fstest.h"

static struct br_fs *mount_img(const char *path)
{
	struct br_fs_options o = { .root_uid = 1000, .root_gid = 1000 };
	struct br_fs *fs = NULL;
	char why[256] = "";
	int err = br_fs_open(path, &o, &fs, why, sizeof(why));

	if (err)
		fprintf(stderr, "br_fs_open: %s (%d)\n", why, err);
	assert_int_equal(err, 0);
	return fs;
}

/* ---- tests ---- */

static void test_new_fs_has_an_empty_root_owned_by_the_mounter(void **state)
{
	struct br_fs *fs = *state;
	struct stat st;
	static struct names nm;

	nm.n = 0;
	assert_int_equal(br_fs_getattr(fs, ROOT, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(br_fs_readdir(fs, ROOT, 0, collect, &nm), 0);
	assert_int_equal(nm.n, 0);
	assert_same_after_remount(state);
}

static void test_write_read_across_records_chunks_and_holes(void **state)
{
	struct br_fs *fs = *state;
	size_t big = (3u << 20) + 12345;
	uint8_t *b = malloc(big), *z = calloc(1, 1 << 20), small[100];
	uint64_t f = mkfile(fs, ROOT, "data"), g = mkfile(fs, ROOT, "sparse");
	uint64_t far = (5ull << 30) + 77;	/* past 4 GiB */
	struct stat st;

	fill_pattern(b, big, 1);
	write_all(fs, f, b, big, 100);
	check_read(fs, f, b, big, 100);
	check_read(fs, f, z, 100, 0);
	/* overwrite in the middle, partially across a chunk boundary */
	fill_pattern(small, sizeof(small), 99);
	write_all(fs, f, small, sizeof(small), (1u << 20) - 50);
	memcpy(b + (1u << 20) - 150, small, sizeof(small));
	check_read(fs, f, b, big, 100);
	/* short read at EOF, nothing past it */
	assert_int_equal(br_fs_read(fs, f, z, 1 << 20, 100 + big - 10), 10);
	assert_int_equal(br_fs_read(fs, f, z, 100, 100 + big + 5), 0);
	memset(z, 0, 1 << 20);

	write_all(fs, g, "tail", 4, far);
	assert_int_equal(br_fs_getattr(fs, g, &st), 0);
	assert_int_equal(st.st_size, far + 4);
	assert_true(st.st_blocks <= 8);	/* a hole costs nothing */
	check_read(fs, g, z, 1 << 20, far - (1 << 20));
	check_read(fs, g, (const uint8_t *)"tail", 4, far);
	assert_int_equal(br_fs_fsync(fs, f, false), 0);
	/* after the sync everything is durable: reads come from the disk */
	check_read(fs, f, b, big, 100);
	assert_same_after_remount(state);
	fs = *state;
	check_read(fs, f, b, big, 100);
	check_read(fs, g, (const uint8_t *)"tail", 4, far);
	free(b);
	free(z);
}

static void test_names_links_and_errors(void **state)
{
	struct br_fs *fs = *state;
	char longname[300];
	struct stat st;
	uint64_t d = mkdir_(fs, ROOT, "d"), f = mkfile(fs, d, "f");

	memset(longname, 'x', sizeof(longname));
	longname[256] = 0;
	assert_int_equal(br_fs_mknod(fs, ROOT, longname, S_IFREG | 0644, 0, &cred, &st), -ENAMETOOLONG);
	assert_int_equal(br_fs_lookup(fs, ROOT, longname, &st), -ENAMETOOLONG);
	longname[255] = 0;
	mkfile(fs, ROOT, longname);
	assert_int_equal(br_fs_mknod(fs, d, "f", S_IFREG, 0, &cred, &st), -EEXIST);
	assert_int_equal(br_fs_mknod(fs, f, "x", S_IFREG, 0, &cred, &st), -ENOTDIR);
	assert_int_equal(br_fs_mknod(fs, d, "fifo", S_IFIFO | 0600, 0, &cred, &st), 0);
	assert_int_equal(br_fs_mknod(fs, d, "sock", S_IFSOCK | 0600, 0, &cred, &st), 0);

	assert_int_equal(br_fs_link(fs, f, ROOT, "hard", &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(br_fs_link(fs, d, ROOT, "dlink", &st), -EPERM);
	assert_int_equal(br_fs_getattr(fs, d, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	mkdir_(fs, d, "sub");
	assert_int_equal(br_fs_getattr(fs, d, &st), 0);
	assert_int_equal(st.st_nlink, 3);
	assert_int_equal(br_fs_rmdir(fs, ROOT, "d"), -ENOTEMPTY);
	assert_int_equal(br_fs_unlink(fs, ROOT, "d"), -EISDIR);
	assert_int_equal(br_fs_rmdir(fs, d, "f"), -ENOTDIR);
	assert_int_equal(br_fs_rmdir(fs, d, "sub"), 0);
	assert_int_equal(br_fs_getattr(fs, d, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(br_fs_unlink(fs, d, "nope"), -ENOENT);

	assert_int_equal(br_fs_symlink(fs, d, "sym", "../hard", &cred, &st), 0);
	char t[64];

	assert_int_equal(br_fs_readlink(fs, st.st_ino, t, sizeof(t)), 7);
	assert_memory_equal(t, "../hard", 7);
	assert_int_equal(br_fs_readlink(fs, f, t, sizeof(t)), -EINVAL);

	assert_int_equal(br_fs_unlink(fs, d, "f"), 0);
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_same_after_remount(state);
}

static void test_rename_follows_renameat2(void **state)
{
	struct br_fs *fs = *state;
	uint64_t a = mkdir_(fs, ROOT, "a"), b = mkdir_(fs, a, "b");
	uint64_t f1 = mkfile(fs, ROOT, "f1"), f2 = mkfile(fs, ROOT, "f2");
	uint64_t e = mkdir_(fs, ROOT, "empty");
	struct stat st;

	(void)b;
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "f2", 4), -EINVAL);
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "f2",
				      BR_FS_RENAME_NOREPLACE | BR_FS_RENAME_EXCHANGE), -EINVAL);
	assert_int_equal(br_fs_rename(fs, ROOT, "a", b, "x", 0), -EINVAL);
	assert_int_equal(br_fs_rename(fs, ROOT, "a", a, "x", 0), -EINVAL);
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "f2", BR_FS_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "nx", BR_FS_RENAME_EXCHANGE), -ENOENT);
	assert_int_equal(br_fs_rename(fs, ROOT, "nx", ROOT, "f2", 0), -ENOENT);
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "a", 0), -EISDIR);
	assert_int_equal(br_fs_rename(fs, ROOT, "empty", ROOT, "f1", 0), -ENOTDIR);
	assert_int_equal(br_fs_rename(fs, ROOT, "empty", ROOT, "a", 0), -ENOTEMPTY);
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "f1", 0), 0);

	/* exchange a file and a directory across directories */
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", a, "b", BR_FS_RENAME_EXCHANGE), 0);
	assert_int_equal(ino_of(fs, ROOT, "f1"), b);
	assert_int_equal(ino_of(fs, a, "b"), f1);
	assert_int_equal(br_fs_getattr(fs, a, &st), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(br_fs_getattr(fs, ROOT, &st), 0);
	assert_int_equal(st.st_nlink, 5);	/* a, empty, f1 (a dir now) */
	/* replace a file: the victim goes away */
	assert_int_equal(br_fs_rename(fs, a, "b", ROOT, "f2", 0), 0);
	assert_int_equal(ino_of(fs, ROOT, "f2"), f1);
	assert_int_equal(br_fs_getattr(fs, f2, &st), 0);
	assert_int_equal(st.st_nlink, 0);	/* our lookup keeps it */
	br_fs_forget(fs, f2, 1);
	assert_int_equal(br_fs_getattr(fs, f2, &st), -ENOENT);
	/* replace an empty directory with a directory */
	assert_int_equal(br_fs_rename(fs, ROOT, "f1", ROOT, "empty", 0), 0);
	assert_int_equal(ino_of(fs, ROOT, "empty"), b);
	br_fs_forget(fs, e, 1);
	assert_int_equal(br_fs_getattr(fs, e, &st), -ENOENT);
	assert_int_equal(br_fs_getattr(fs, ROOT, &st), 0);
	assert_int_equal(st.st_nlink, 4);
	/* move a directory down and check ".." */
	assert_int_equal(br_fs_rename(fs, ROOT, "empty", a, "moved", 0), 0);
	assert_int_equal(ino_of(fs, b, ".."), a);
	assert_same_after_remount(state);
}

static void test_setattr_truncate_times_and_xattrs(void **state)
{
	struct br_fs *fs = *state;
	uint64_t f = mkfile(fs, ROOT, "f");
	uint8_t b[10000], z[5000] = { 0 };
	struct br_setattr sa = { 0 };
	struct stat st;
	char v[16];

	fill_pattern(b, sizeof(b), 5);
	write_all(fs, f, b, sizeof(b), 0);
	sa.valid = BR_SET_SIZE;
	sa.size = 5000;
	assert_int_equal(br_fs_setattr(fs, f, &sa, &st), 0);
	assert_int_equal(st.st_size, 5000);
	sa.size = 10000;	/* up again: the old bytes must not come back */
	assert_int_equal(br_fs_setattr(fs, f, &sa, &st), 0);
	check_read(fs, f, b, 5000, 0);
	check_read(fs, f, z, 5000, 5000);
	sa.valid = BR_SET_MODE | BR_SET_UID | BR_SET_GID | BR_SET_ATIME | BR_SET_MTIME;
	sa.mode = 04711;
	sa.uid = 7;
	sa.gid = 8;
	sa.atime.tv_sec = 1000000000;
	sa.mtime.tv_sec = 1234567890;
	sa.mtime.tv_nsec = 5;
	assert_int_equal(br_fs_setattr(fs, f, &sa, &st), 0);
	assert_int_equal(st.st_mode, S_IFREG | 04711);
	assert_int_equal(st.st_mtim.tv_sec, 1234567890);
	sa.valid = BR_SET_SIZE;
	assert_int_equal(br_fs_setattr(fs, ROOT, &sa, &st), -EISDIR);

	assert_int_equal(br_fs_setxattr(fs, f, "user.a", "1", 1, BR_FS_XATTR_REPLACE), -ENODATA);
	assert_int_equal(br_fs_setxattr(fs, f, "user.a", "1", 1, BR_FS_XATTR_CREATE), 0);
	assert_int_equal(br_fs_setxattr(fs, f, "user.a", "2", 1, BR_FS_XATTR_CREATE), -EEXIST);
	assert_int_equal(br_fs_setxattr(fs, f, "user.a", "value", 5, BR_FS_XATTR_REPLACE), 0);
	assert_int_equal(br_fs_setxattr(fs, f, "user.b", "x", 1, 0), 0);
	assert_int_equal(br_fs_setxattr(fs, f, "user.gone", "x", 1, 0), 0);
	assert_int_equal(br_fs_removexattr(fs, f, "user.gone"), 0);
	assert_int_equal(br_fs_removexattr(fs, f, "user.gone"), -ENODATA);
	assert_int_equal(br_fs_getxattr(fs, f, "user.a", NULL, 0), 5);
	assert_int_equal(br_fs_getxattr(fs, f, "user.a", v, 2), -ERANGE);
	assert_int_equal(br_fs_getxattr(fs, f, "user.gone", v, sizeof(v)), -ENODATA);
	assert_int_equal(br_fs_listxattr(fs, f, v, 3), -ERANGE);
	assert_int_equal(br_fs_listxattr(fs, f, NULL, 0), 14);
	assert_int_equal(br_fs_setxattr(fs, ROOT, "user.dir", "d", 1, 0), 0);
	assert_same_after_remount(state);
	fs = *state;
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_uid, 7);
	assert_int_equal(st.st_mtim.tv_nsec, 5);
}

static void test_fallocate_punch_and_seek_data_hole(void **state)
{
	struct br_fs *fs = *state;
	uint64_t f = mkfile(fs, ROOT, "f"), r;
	size_t n = 3u << 20;
	uint8_t *b = malloc(n);
	struct stat st;

	fill_pattern(b, n, 9);
	write_all(fs, f, b, n, 0);
	assert_int_equal(br_fs_fallocate(fs, f, BR_FALLOC_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
	assert_int_equal(br_fs_fallocate(fs, f, BR_FALLOC_PUNCH_HOLE | BR_FALLOC_KEEP_SIZE,
					 1u << 20, 1u << 20), 0);
	memset(b + (1u << 20), 0, 1u << 20);
	check_read(fs, f, b, n, 0);
	assert_int_equal(br_fs_lseek(fs, f, 0, SEEK_HOLE, &r), 0);
	assert_int_equal(r, 1u << 20);
	assert_int_equal(br_fs_lseek(fs, f, r, SEEK_DATA, &r), 0);
	assert_int_equal(r, 2u << 20);
	assert_int_equal(br_fs_lseek(fs, f, 2u << 20, SEEK_HOLE, &r), 0);
	assert_int_equal(r, n);
	assert_int_equal(br_fs_lseek(fs, f, n, SEEK_DATA, &r), -ENXIO);
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_blocks, (2u << 20) / 512);
	/* default mode grows the size; KEEP_SIZE does not */
	assert_int_equal(br_fs_fallocate(fs, f, BR_FALLOC_KEEP_SIZE, n, 4096), 0);
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_size, n);
	assert_int_equal(br_fs_fallocate(fs, f, 0, n, 4096), 0);
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_size, n + 4096);
	assert_int_equal(br_fs_fallocate(fs, f, 0, 0, IMG_SIZE * 2), -ENOSPC);
	assert_same_after_remount(state);
	free(b);
}

struct rd {
	uint64_t seen[4096];
	int n;
	int limit;
	uint64_t last;
};

static int rd_fill(void *ctx, const char *name, uint64_t ino, uint32_t type,
		   uint64_t next)
{
	struct rd *r = ctx;

	(void)name;
	(void)type;
	if (r->limit-- <= 0)
		return 1;
	r->seen[r->n++] = ino;
	r->last = next;
	return 0;
}

static void test_readdir_offsets_survive_deletes(void **state)
{
	struct br_fs *fs = *state;
	uint64_t d = mkdir_(fs, ROOT, "dir"), inos[300];
	struct rd r = { .n = 0 };
	char name[32];
	int counts[300] = { 0 };

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "e%03d", i);
		inos[i] = mkfile(fs, d, name);
	}
	/* read 50 at a time, deleting 7 entries between calls */
	uint64_t off = 0;
	int del = 0;

	for (;;) {
		int before = r.n;

		r.limit = 50;
		assert_int_equal(br_fs_readdir(fs, d, off, rd_fill, &r), 0);
		if (r.n == before)
			break;
		off = r.last;
		for (int k = 0; k < 7 && del < 300; k++, del += 3) {
			snprintf(name, sizeof(name), "e%03d", del);
			br_fs_unlink(fs, d, name);
		}
	}
	for (int i = 0; i < r.n; i++)
		for (int j = 0; j < 300; j++)
			if (r.seen[i] == inos[j])
				counts[j]++;
	for (int j = 0; j < 300; j++) {
		snprintf(name, sizeof(name), "e%03d", j);
		if (ino_of(fs, d, name))
			assert_int_equal(counts[j], 1);	/* never removed */
		else
			assert_true(counts[j] <= 1);
	}
	assert_same_after_remount(state);
}

static void test_unlinked_open_file_lives_until_forgotten(void **state)
{
	struct br_fs *fs = *state;
	struct stat st;
	uint64_t f;

	assert_int_equal(br_fs_mknod(fs, ROOT, "tmp", S_IFREG | 0600, 0, &cred, &st), 0);
	f = st.st_ino;	/* one lookup count held, like an open file */
	assert_int_equal(br_fs_unlink(fs, ROOT, "tmp"), 0);
	write_all(fs, f, "still here", 10, 0);
	check_read(fs, f, (const uint8_t *)"still here", 10, 0);
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	assert_int_equal(st.st_nlink, 0);
	assert_int_equal(br_fs_setxattr(fs, f, "user.x", "1", 1, 0), 0);
	br_fs_forget(fs, f, 1);
	assert_int_equal(br_fs_getattr(fs, f, &st), -ENOENT);
	/* replay skips what was written to it after the unlink */
	remount(state);
	assert_int_equal(br_fs_getattr(*state, f, &st), -ENOENT);
}

/* Copy the image while mounted: what a power cut right now would leave. */

static void test_fsync_makes_data_and_names_durable(void **state)
{
	struct br_fs *fs = *state, *fs2;
	char copy[4200];
	uint8_t b[5000];
	uint64_t d = mkdir_(fs, ROOT, "new"), f = mkfile(fs, d, "file");
	struct stat st;

	fill_pattern(b, sizeof(b), 3);
	write_all(fs, f, b, sizeof(b), 0);
	assert_int_equal(br_fs_fsync(fs, f, true), 0);
	snprintf(copy, sizeof(copy), "%s.crash", img);
	copy_image(img, copy);
	fs2 = mount_img(copy);
	d = ino_of(fs2, ROOT, "new");
	assert_true(d != 0);
	f = ino_of(fs2, d, "file");
	assert_true(f != 0);
	assert_int_equal(br_fs_getattr(fs2, f, &st), 0);
	assert_int_equal(st.st_size, sizeof(b));
	check_read(fs2, f, b, sizeof(b), 0);
	assert_int_equal(br_fs_close(fs2), 0);
	unlink(copy);
}

static void test_open_refuses_a_second_mount_and_foreign_files(void **state)
{
	struct br_fs *fs2 = NULL;
	char why[256], other[4200];
	int fd;

	(void)state;
	assert_int_equal(br_fs_open(img, NULL, &fs2, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "already mounted"));
	snprintf(other, sizeof(other), "%s.zero", img);
	fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	close(fd);
	assert_int_equal(br_fs_open(other, NULL, &fs2, why, sizeof(why)), BR_ERR_CORRUPT);
	assert_non_null(strstr(why, "not a bringfs"));
	unlink(other);
	assert_int_equal(br_fs_open("/nonexistent/img", NULL, &fs2, why, sizeof(why)), -ENOENT);
}

/* Random operations on a few files against byte-array models, with
 * remounts in between: pending and durable reads, overwrites, truncates. */
#define MFILES 4
#define MSIZE (3u << 20)

static void test_random_file_ops_match_a_model_across_remounts(void **state)
{
	struct br_fs *fs = *state;
	uint8_t *model[MFILES], *buf = malloc(MSIZE);
	uint64_t size[MFILES] = { 0 }, ino[MFILES];
	uint64_t rs = 42;
	char name[16];

	for (int i = 0; i < MFILES; i++) {
		model[i] = calloc(1, MSIZE);
		snprintf(name, sizeof(name), "m%d", i);
		ino[i] = mkfile(fs, ROOT, name);
	}
	for (int step = 0; step < 1500; step++) {
		rs = rs * 6364136223846793005ull + 1442695040888963407ull;
		int i = (int)((rs >> 33) % MFILES), op = (int)((rs >> 40) % 10);
		uint64_t off = (rs >> 13) % MSIZE;
		uint64_t len = op < 3 ? 1 + (rs >> 7) % 300 : 1 + (rs >> 5) % (400u << 10);

		if (off + len > MSIZE)
			len = MSIZE - off;
		if (op < 6) {
			fill_pattern(model[i] + off, len, rs);
			write_all(fs, ino[i], model[i] + off, len, off);
			if (off + len > size[i])
				size[i] = off + len;
		} else if (op == 6) {
			struct br_setattr sa = { .valid = BR_SET_SIZE, .size = off };

			assert_int_equal(br_fs_setattr(fs, ino[i], &sa, NULL), 0);
			if (off < size[i])
				memset(model[i] + off, 0, size[i] - off);
			size[i] = off;
		} else if (op == 7) {
			assert_int_equal(br_fs_fallocate(fs, ino[i],
				BR_FALLOC_PUNCH_HOLE | BR_FALLOC_KEEP_SIZE, off, len), 0);
			memset(model[i] + off, 0, len);
		} else {
			uint64_t n = off < size[i] ? (size[i] - off < len ? size[i] - off : len) : 0;

			assert_int_equal(br_fs_read(fs, ino[i], buf, len, off), (ssize_t)n);
			assert_memory_equal(buf, model[i] + off, n);
		}
		if (step % 500 == 499) {
			fs = remount(state);
			for (int k = 0; k < MFILES; k++) {
				struct stat st;

				assert_int_equal(br_fs_getattr(fs, ino[k], &st), 0);
				assert_int_equal(st.st_size, size[k]);
				check_read(fs, ino[k], model[k], size[k], 0);
			}
		}
	}
	for (int i = 0; i < MFILES; i++)
		free(model[i]);
	free(buf);
}

struct wr_arg {
	struct br_fs *fs;
	uint64_t ino;
	int id;
};

static void *writer(void *p)
{
	struct wr_arg *a = p;
	uint8_t b[65536];

	for (int i = 0; i < 64; i++) {
		fill_pattern(b, sizeof(b), (uint64_t)a->id * 1000 + (uint64_t)i);
		if (br_fs_write(a->fs, a->ino, b, sizeof(b), (uint64_t)i * sizeof(b)) != sizeof(b))
			return (void *)1;
		if (br_fs_read(a->fs, a->ino, b, sizeof(b), (uint64_t)i * sizeof(b)) != sizeof(b))
			return (void *)1;
	}
	return NULL;
}

static _Atomic int dev_failing;

static int failing_device(void *ctx, uint64_t off, uint32_t len, int res)
{
	(void)ctx;
	(void)off;
	(void)len;
	return atomic_load(&dev_failing) ? -EIO : res;
}

/* A device whose writes start failing: the writer and fsync get EIO, the
 * filesystem refuses every later change, reads still work (also of what
 * the failed buffer held), and a remount finds everything synced before. */
static void test_failing_device_turns_read_only_and_keeps_synced_data(void **state)
{
	struct br_fs_options o = { .root_uid = 1000, .root_gid = 1000,
				   .fault = failing_device };
	static uint8_t a[100000], b[100000];
	struct br_fs *fs;
	struct stat st;
	char why[256] = "";
	uint64_t fa, fb;

	assert_int_equal(br_fs_close(*state), 0);
	*state = NULL;
	assert_int_equal(br_fs_open(img, &o, &fs, why, sizeof(why)), 0);
	*state = fs;
	fill_pattern(a, sizeof(a), 1);
	fill_pattern(b, sizeof(b), 2);
	fa = mkfile(fs, ROOT, "synced");
	write_all(fs, fa, a, sizeof(a), 0);
	assert_int_equal(br_fs_fsync(fs, fa, 0), 0);

	atomic_store(&dev_failing, 1);
	fb = mkfile(fs, ROOT, "unsynced");
	write_all(fs, fb, b, sizeof(b), 0);
	assert_int_equal(br_fs_fsync(fs, fb, 0), -EIO);
	/* latched: no change is accepted any more */
	assert_int_equal(br_fs_write(fs, fa, b, 100, 0), -EIO);
	assert_int_equal(br_fs_mknod(fs, ROOT, "more", S_IFREG | 0644, 0,
				     &cred, &st), -EIO);
	assert_int_equal(br_fs_fsync(fs, fa, 0), -EIO);
	/* reads still work, of durable data and of the failed buffer's */
	check_read(fs, fa, a, sizeof(a), 0);
	check_read(fs, fb, b, sizeof(b), 0);
	assert_true(br_fs_close(fs) != 0);	/* the close reports it */
	*state = NULL;

	atomic_store(&dev_failing, 0);
	fs = mount_img(img);
	*state = fs;
	fa = ino_of(fs, ROOT, "synced");
	assert_true(fa != 0);
	check_read(fs, fa, a, sizeof(a), 0);
	/* the filesystem is writable again on a healthy device */
	write_all(fs, mkfile(fs, ROOT, "after"), b, 1000, 0);
}

static unsigned long long stat_field(const char *text, const char *name)
{
	const char *p = strstr(text, name);

	assert_non_null(p);
	return strtoull(p + strlen(name), NULL, 10);
}

static void stats_of(struct br_fs *fs, char *text, size_t size)
{
	ssize_t n = br_fs_getxattr(fs, ROOT, BR_STATS_XATTR, text, size - 1);

	assert_true(n > 0);
	text[n] = 0;
}

/* The root's virtual stats xattr counts what users and the device wrote,
 * and where the log's segments are. */
static void test_stats_xattr_reports_space_and_write_amplification(void **state)
{
	struct br_fs *fs = *state;
	static uint8_t b[1u << 20];
	char text[1024];
	ssize_t n, len;
	uint64_t f = mkfile(fs, ROOT, "data"), free0;

	fill_pattern(b, sizeof(b), 5);
	for (int i = 0; i < 4; i++)
		write_all(fs, f, b, sizeof(b), (uint64_t)i << 20);
	assert_int_equal(br_fs_syncfs(fs), 0);
	len = br_fs_getxattr(fs, ROOT, BR_STATS_XATTR, NULL, 0);
	assert_true(len > 0 && len < (ssize_t)sizeof(text));
	assert_int_equal(br_fs_getxattr(fs, ROOT, BR_STATS_XATTR, text, 4), -ERANGE);
	n = br_fs_getxattr(fs, ROOT, BR_STATS_XATTR, text, sizeof(text) - 1);
	assert_int_equal(n, len);
	text[n] = 0;
	assert_true(stat_field(text, "user_bytes ") >= 4u << 20);
	/* every user byte went to the device once, plus headers and metadata */
	assert_true(stat_field(text, "device_bytes ") >= stat_field(text, "user_bytes "));
	assert_true(stat_field(text, "total_segments ") > stat_field(text, "free_segments "));
	assert_non_null(strstr(text, "write_amplification 1."));
	assert_non_null(strstr(text, "cleaner off"));
	/* the log's current segment and its chosen next one are open */
	assert_true(stat_field(text, "open_segments ") >= 2);
	/* overwritten whole, a first copy larger than two segments leaves
	 * one dead at least; newer than the roll point, it waits for a
	 * checkpoint, which frees it */
	for (int i = 4; i < 24; i++)
		write_all(fs, f, b, sizeof(b), (uint64_t)i << 20);
	assert_int_equal(br_fs_syncfs(fs), 0);
	stats_of(fs, text, sizeof(text));
	assert_int_equal(stat_field(text, "checkpoint_wait_segments "), 0);
	/* segments under 12 MiB: 24 MiB spans two */
	assert_true(stat_field(text, "total_segments ") * (12ull << 20) >
		    (unsigned long long)IMG_SIZE);
	for (int i = 0; i < 24; i++)
		write_all(fs, f, b, sizeof(b), (uint64_t)i << 20);
	assert_int_equal(br_fs_syncfs(fs), 0);
	stats_of(fs, text, sizeof(text));
	assert_true(stat_field(text, "checkpoint_wait_segments ") >= 1);
	assert_true(stat_field(text, "dead_segments ") >=
		    stat_field(text, "checkpoint_wait_segments "));
	free0 = stat_field(text, "free_segments ");
	assert_int_equal(br_ckpt_write(fs), 0);
	stats_of(fs, text, sizeof(text));
	assert_int_equal(stat_field(text, "checkpoint_wait_segments "), 0);
	assert_true(stat_field(text, "free_segments ") > free0);
	/* only the root has it, and it is not a stored xattr */
	assert_int_equal(br_fs_getxattr(fs, f, BR_STATS_XATTR, NULL, 0), -ENODATA);
}

struct plus_seen {
	char names[8][16];
	struct stat st[8];
	int n, room;		/* entries taken; how many to take at most */
};

static int plus_fill(void *ctx, const char *name, const struct stat *st,
		     uint64_t next)
{
	struct plus_seen *p = ctx;

	(void)next;
	if (p->n == p->room)
		return 1;	/* full: this one is not taken */
	snprintf(p->names[p->n], sizeof(p->names[0]), "%s", name);
	p->st[p->n++] = *st;
	return 0;
}

/* readdirplus gives each entry's attributes, and every entry it hands out
 * (not ".", "..", nor one that did not fit) counts as one lookup: an
 * unlinked file lives until exactly that lookup is forgotten. */
static void test_readdirplus_attributes_and_lookup_counts(void **state)
{
	struct br_fs *fs = *state;
	struct plus_seen p = { .room = 8 };
	struct stat st;
	uint64_t d = mkdir_(fs, ROOT, "d"), f = mkfile(fs, d, "f"), g;

	g = mkfile(fs, d, "g");
	write_all(fs, f, "hello", 5, 0);
	br_fs_forget(fs, f, 1);		/* drop the creations' lookups */
	br_fs_forget(fs, g, 1);
	assert_int_equal(br_fs_readdirplus(fs, d, 0, plus_fill, &p), 0);
	assert_int_equal(p.n, 4);
	assert_string_equal(p.names[0], ".");
	assert_string_equal(p.names[2], "f");
	assert_int_equal(p.st[2].st_ino, f);
	assert_int_equal(p.st[2].st_size, 5);
	assert_true(S_ISREG(p.st[2].st_mode));
	assert_int_equal(p.st[0].st_ino, d);

	/* "f" was handed out once: it outlives its unlink until one forget */
	assert_int_equal(br_fs_unlink(fs, d, "f"), 0);
	assert_int_equal(br_fs_getattr(fs, f, &st), 0);
	br_fs_forget(fs, f, 1);
	assert_int_equal(br_fs_getattr(fs, f, &st), -ENOENT);

	/* an entry that did not fit was not counted: "g" (whose lookup from
	 * the first listing is forgotten here) goes at once */
	br_fs_forget(fs, g, 1);
	p = (struct plus_seen){ .room = 2 };	/* ".", ".." only */
	assert_int_equal(br_fs_readdirplus(fs, d, 0, plus_fill, &p), 0);
	assert_int_equal(p.n, 2);
	assert_int_equal(br_fs_unlink(fs, d, "g"), 0);
	assert_int_equal(br_fs_getattr(fs, g, &st), -ENOENT);
	/* and neither "." nor ".." were: the directory goes with its name */
	assert_int_equal(br_fs_rmdir(fs, ROOT, "d"), 0);
	br_fs_forget(fs, d, 1);
	assert_int_equal(br_fs_getattr(fs, d, &st), -ENOENT);
}

static void test_parallel_writers_then_replay(void **state)
{
	struct br_fs *fs = *state;
	struct wr_arg a[4];
	pthread_t t[4];
	char name[16];
	uint8_t want[65536];

	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		a[i] = (struct wr_arg){ fs, mkfile(fs, ROOT, name), i };
		assert_int_equal(pthread_create(&t[i], NULL, writer, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;

		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	fs = remount(state);
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 64; k++) {
			fill_pattern(want, sizeof(want), (uint64_t)i * 1000 + (uint64_t)k);
			check_read(fs, a[i].ino, want, sizeof(want), (uint64_t)k * sizeof(want));
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_fs_has_an_empty_root_owned_by_the_mounter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_across_records_chunks_and_holes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_links_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_follows_renameat2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setattr_truncate_times_and_xattrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fallocate_punch_and_seek_data_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readdir_offsets_survive_deletes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlinked_open_file_lives_until_forgotten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_makes_data_and_names_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses_a_second_mount_and_foreign_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_file_ops_match_a_model_across_remounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel_writers_then_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readdirplus_attributes_and_lookup_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_xattr_reports_space_and_write_amplification, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_device_turns_read_only_and_keeps_synced_data, setup, teardown),
	};

	if (!br_test_have_io_uring())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
