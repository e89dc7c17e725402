/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * brtool: drive the filesystem engine (core/fsys.h) directly, no FUSE, to
 * make and inspect small images for the crash tests and the fuzz corpus.
 *
 *   brtool mkimage IMAGE          64 MiB image, 1 MiB segments, 64 KiB
 *                                 buffers (what mkfs writes: superblock +
 *                                 backup, slot 0, slot 1 and the first
 *                                 log block zeroed)
 *   brtool populate IMAGE SEED N [CKPT_EVERY]
 *                                 open, N random operations (files,
 *                                 directories, symlinks, hard links,
 *                                 renames, unlinks, xattrs, truncates,
 *                                 punches), fsync after most of them so
 *                                 the log gets many small buffers, a
 *                                 checkpoint after every CKPT_EVERY
 *                                 operations (default 0: none, and none
 *                                 in the background), a final syncfs, then
 *                                 _exit without closing: close would write
 *                                 a checkpoint and leave a short tail, and
 *                                 the power-cut tests need a long one
 *   brtool close IMAGE            open and close cleanly (the checkpoint
 *                                 a clean unmount writes)
 *   brtool info IMAGE             open (= checkpoint load + replay), print
 *                                 "buffers=B records=R inodes=I next=ADDR
 *                                 gen=G fallback=0|1" (G: checkpoint
 *                                 generation loaded, 0: none), _exit
 *                                 without closing (close would write a
 *                                 checkpoint); exit 1 with the reason if
 *                                 the open fails
 *   brtool crashwrite IMAGE NAME  open, create NAME with a few bytes,
 *                                 fsync, then _exit without closing (a
 *                                 crash right after an fsync)
 *   brtool ls IMAGE               open read-only, print the names in the
 *                                 root directory, one a line (nothing
 *                                 written)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "checkpoint.h"
#include "fsys.h"
#include "map.h"
#include "super.h"

static uint64_t rs;
static uint64_t rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 2685821657736338717ull;
}
static uint32_t below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }

static int die(const char *what, int err, const char *why)
{
	fprintf(stderr, "brtool: %s: %s%s%s\n", what, strerror(err < 0 ? -err : err),
		why && *why ? ": " : "", why ? why : "");
	return 1;
}

static int mkimage(const char *path)
{
	static _Alignas(4096) uint8_t zero[4096];
	struct br_super sb;
	struct br_slot slot = { 0 };
	char why[200];
	uint64_t size = 64ull << 20;
	int fd, err;

	err = br_super_geometry(size, 1ull << 20, 64u << 10, &sb, why, sizeof(why));
	if (err)
		return die("geometry", err, why);
	uuid_generate(sb.uuid);
	sb.ctime_sec = (uint64_t)time(NULL);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size))
		return die(path, errno, NULL);
	slot.seq = 1;
	slot.roll_addr = sb.log_start;
	slot.roll_seq = 1;
	if ((err = br_slot_clear(fd, 1)) || (err = br_slot_write(fd, &sb, 0, &slot)) ||
	    (pwrite(fd, zero, sizeof(zero), (off_t)sb.log_start) != sizeof(zero) && (err = -EIO)) ||
	    (err = br_super_write(fd, &sb)))
		return die("write", err, NULL);
	close(fd);
	return 0;
}

static int open_fs_ro(const char *image, struct br_fs **fs, bool ro)
{
	/* no background checkpoints: the tests place them */
	struct br_fs_options o = { .nbuf = 4, .ckpt_bytes = UINT64_MAX,
				   .ckpt_secs = UINT32_MAX, .read_only = ro };
	char why[300] = "";
	int err = br_fs_open(image, &o, fs, why, sizeof(why));

	if (err)
		return die("open", err, why);
	return 0;
}

static int open_fs(const char *image, struct br_fs **fs)
{
	return open_fs_ro(image, fs, false);
}

#define NNAMES 12

static int populate(const char *image, uint64_t seed, long n, long ckpt_every)
{
	struct br_fs *fs;
	struct br_cred cr = { 0, 0 };
	uint64_t dirs[4] = { BR_ROOT_INO, 0, 0, 0 };
	char buf[9000];
	int err;

	rs = seed * 0x9e3779b97f4a7c15ull + 7;
	if (open_fs(image, &fs))
		return 1;
	/* a few directories */
	for (int i = 1; i < 4; i++) {
		struct stat st;
		char nm[16];

		snprintf(nm, sizeof(nm), "d%d", i);
		err = br_fs_mkdir(fs, BR_ROOT_INO, nm, 0755, &cr, &st);
		if (err == -EEXIST)
			err = br_fs_lookup(fs, BR_ROOT_INO, nm, &st);
		if (err)
			return die("mkdir", err, nm);
		dirs[i] = st.st_ino;
	}
	for (long i = 0; i < n; i++) {
		uint64_t d = dirs[below(4)], d2 = dirs[below(4)];
		char nm[16], nm2[16];
		struct stat st;
		uint32_t r = below(100);

		snprintf(nm, sizeof(nm), "f%u", below(NNAMES));
		snprintf(nm2, sizeof(nm2), "f%u", below(NNAMES));
		err = br_fs_lookup(fs, d, nm, &st);
		if (err == -ENOENT) {
			if (r < 10)
				err = br_fs_symlink(fs, d, nm, "some/target", &cr, &st);
			else
				err = br_fs_mknod(fs, d, nm, S_IFREG | 0644, 0, &cr, &st);
		}
		if (err)
			return die("lookup/create", err, nm);
		if (S_ISREG(st.st_mode)) {
			if (r < 45) {
				size_t len = 1 + below(r < 5 ? sizeof(buf) : 300);

				memset(buf, 'a' + (int)below(26), len);
				err = (int)br_fs_write(fs, st.st_ino, buf, len, below(20000));
				err = err < 0 ? err : 0;
			} else if (r < 52) {
				err = br_fs_rename(fs, d, nm, d2, nm2, 0);
				if (err == -EISDIR || err == -ENOTDIR)
					err = 0;
			} else if (r < 58) {
				err = br_fs_link(fs, st.st_ino, d2, nm2, &st);
				if (err == -EEXIST)
					err = 0;
			} else if (r < 65) {
				err = br_fs_unlink(fs, d, nm);
			} else if (r < 70) {
				struct br_setattr sa = { .valid = BR_SET_SIZE, .size = below(9000) };

				err = br_fs_setattr(fs, st.st_ino, &sa, &st);
			} else if (r < 74) {
				err = br_fs_fallocate(fs, st.st_ino, BR_FALLOC_PUNCH_HOLE | BR_FALLOC_KEEP_SIZE,
						      below(5000), 1 + below(5000));
			} else if (r < 80) {
				err = br_fs_setxattr(fs, st.st_ino, "user.k", "value", 1 + below(5), 0);
			} else if (r < 83) {
				err = br_fs_removexattr(fs, st.st_ino, "user.k");
				if (err == -ENODATA)
					err = 0;
			} else {
				struct br_setattr sa = { .valid = BR_SET_MODE, .mode = 0600 | below(0100) };

				err = br_fs_setattr(fs, st.st_ino, &sa, &st);
			}
		} else if (r < 50) {
			err = br_fs_unlink(fs, d, nm);
		}
		if (err)
			return die("operation", err, nm);
		br_fs_forget(fs, st.st_ino, 1);
		if (below(4))
			br_fs_syncfs(fs);
		if (ckpt_every > 0 && (i + 1) % ckpt_every == 0 &&
		    (err = br_ckpt_write(fs)))
			return die("checkpoint", err, NULL);
	}
	err = br_fs_syncfs(fs);
	if (err)
		return die("syncfs", err, NULL);
	fflush(stdout);
	_exit(0);	/* no close: no checkpoint at the end */
}

static int close_clean(const char *image)
{
	struct br_fs *fs;
	int err;

	if (open_fs(image, &fs))
		return 1;
	err = br_fs_close(fs);
	return err ? die("close", err, NULL) : 0;
}

static int info(const char *image)
{
	struct br_fs *fs;
	struct br_fs_info in;

	struct br_ckpt_stats st;

	if (open_fs(image, &fs))	/* read-only opens do not set log_next */
		return 1;
	br_fs_info(fs, &in);
	br_ckpt_stats(fs, &st);
	printf("buffers=%" PRIu64 " records=%" PRIu64 " inodes=%" PRIu64 " next=%" PRIu64
	       " gen=%" PRIu64 " fallback=%d\n",
	       in.replayed_buffers, in.replayed_records, in.inodes, in.log_next,
	       st.loaded_gen, st.fallback ? 1 : 0);
	fflush(stdout);
	_exit(0);	/* no close: it would write a checkpoint */
}

static int crashwrite(const char *image, const char *name)
{
	struct br_fs *fs;
	struct br_cred cr = { 0, 0 };
	struct stat st;
	int err;

	if (open_fs(image, &fs))
		return 1;
	err = br_fs_mknod(fs, BR_ROOT_INO, name, S_IFREG | 0644, 0, &cr, &st);
	if (!err)
		err = br_fs_write(fs, st.st_ino, "after", 5, 0) == 5 ? 0 : -EIO;
	if (!err)
		err = br_fs_fsync(fs, st.st_ino, false);
	if (!err)
		err = br_fs_fsync(fs, BR_ROOT_INO, false);
	if (err)
		return die("crashwrite", err, name);
	fflush(stdout);
	_exit(0);	/* no close: nothing else reaches the log */
}

static int fill(void *ctx, const char *name, uint64_t ino, uint32_t type, uint64_t next)
{
	(void)ctx, (void)ino, (void)type, (void)next;
	if (strcmp(name, ".") && strcmp(name, ".."))
		printf("%s\n", name);
	return 0;
}

static int ls(const char *image)
{
	struct br_fs *fs;
	int err;

	if (open_fs_ro(image, &fs, true))
		return 1;
	err = br_fs_readdir(fs, BR_ROOT_INO, 0, fill, NULL);
	if (err)
		return die("readdir", err, NULL);
	err = br_fs_close(fs);
	return err ? die("close", err, NULL) : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "mkimage"))
		return mkimage(argv[2]);
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "populate"))
		return populate(argv[2], strtoull(argv[3], NULL, 0), atol(argv[4]),
				argc == 6 ? atol(argv[5]) : 0);
	if (argc == 3 && !strcmp(argv[1], "close"))
		return close_clean(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "info"))
		return info(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "crashwrite"))
		return crashwrite(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "ls"))
		return ls(argv[2]);
	fprintf(stderr, "usage: brtool mkimage|populate|close|info|crashwrite|ls IMAGE ...\n");
	return 2;
}
