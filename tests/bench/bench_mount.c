/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench-mount: how long mount takes from a checkpoint, and how fast
 * roll-forward replays a log tail.  Uses core/fsys directly (no FUSE).
 *
 *   bench-mount [-s DATA_MIB] [-n FILES] [-t TAIL_MIB] IMAGE_PATH
 *
 * 1. formats IMAGE_PATH (a file on a filesystem with O_DIRECT), creates
 *    FILES files (default 200000) holding DATA_MIB MiB of real data in
 *    total (default 8192), unmounts cleanly (checkpoint), times the mount:
 *      bench=mount files=.. data_gib=.. mount_ms=.. ckpt_mib=..
 *      bench=ckpt-block inodes=.. blob_mib=.. block_ms=.. ms_per_gib=..
 *                       writer_max_ms=.. writer_max_ms_idle=..
 *    A writer thread overwrites 4 KiB of random files while the checkpoint
 *    is taken: writer_max_ms is its slowest write then, writer_max_ms_idle
 *    its slowest in as many writes without a checkpoint (the reference);
 *    block_ms is the checkpoint's own figure (the longest of: the cut, a
 *    batch of its walk, one copy-on-write; core/checkpoint.h).
 * 2. writes TAIL_MIB MiB (default 1024) more and syncs, copies the image
 *    while it is mounted (what a power cut leaves: the newest checkpoint
 *    precedes the tail) and times the mount of the copy, which rolls the
 *    whole tail forward:
 *      bench=replay log_mib=.. mib_s=..
 *    The copy needs as much free space as the image (kept sparse).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "checkpoint.h"
#include "fsys.h"
#include "super.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int format_image(const char *path, uint64_t size)
{
	return br_format_file(path, size, BR_SEG_SIZE_DEFAULT,
			      BR_BUF_SIZE_DEFAULT, NULL, 0);
}

static struct br_fs *open_fs(const char *path)
{
	struct br_fs_options o = { .ckpt_bytes = UINT64_MAX,
				   .ckpt_secs = UINT32_MAX };
	struct br_fs *fs = NULL;
	char why[300] = "";
	int err = br_fs_open(path, &o, &fs, why, sizeof(why));

	if (err) {
		fprintf(stderr, "bench-mount: error: %s\n", why);
		exit(1);
	}
	return fs;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-mount: error: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* Overwrites 4 KiB at offset 0 of random files until stopped (or, with
 * limit, for that many writes); the slowest write. */
struct writer {
	struct br_fs *fs;
	const uint64_t *inos;
	uint64_t n, limit, done;
	double max_ms;
	atomic_bool stop;
};

static void *writer_run(void *p)
{
	struct writer *w = p;
	uint64_t x = 88172645463325252ull;
	static uint8_t b[4096];

	while (!atomic_load(&w->stop) && (!w->limit || w->done < w->limit)) {
		double t0 = now_ms(), dt;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[0] = (uint8_t)x;
		if (br_fs_write(w->fs, w->inos[x % w->n], b, sizeof(b), 0) != (ssize_t)sizeof(b))
			die("write", -EIO);
		dt = now_ms() - t0;
		if (dt > w->max_ms)
			w->max_ms = dt;
		w->done++;
	}
	return NULL;
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	static char b[8 << 20];
	ssize_t n;

	if (in < 0 || out < 0)
		die("copy", -errno);
	while ((n = read(in, b, sizeof(b))) > 0) {
		/* keep the copy sparse where the image is */
		bool zero = true;

		for (ssize_t i = 0; i < n && zero; i += 4096)
			zero = !memcmp(b + i, b + sizeof(b) - 4096, 4096) && !b[i];
		if (zero)
			lseek(out, n, SEEK_CUR);
		else if (write(out, b, (size_t)n) != n)
			die("copy", -EIO);
	}
	if (ftruncate(out, lseek(in, 0, SEEK_END)))
		die("copy", -errno);
	close(in);
	close(out);
}

int main(int argc, char **argv)
{
	uint64_t data_mib = 8192, files = 200000, tail_mib = 1024, per;
	struct br_ckpt_stats cs;
	struct br_fs_info info;
	struct br_fs *fs;
	const char *path;
	char copy[4200];
	uint8_t *buf;
	uint64_t *inos;
	double t0, t1;
	int opt;

	while ((opt = getopt(argc, argv, "s:n:t:")) != -1) {
		switch (opt) {
		case 's': data_mib = strtoull(optarg, NULL, 10); break;
		case 'n': files = strtoull(optarg, NULL, 10); break;
		case 't': tail_mib = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench-mount [-s DATA_MIB] [-n FILES] [-t TAIL_MIB] IMAGE\n");
			return 2;
		}
	}
	if (optind != argc - 1 || !files)
		return 2;
	path = argv[optind];
	if (format_image(path, (data_mib + tail_mib) * 1100 * 1024 + (2ull << 30)))
		die("format", -EIO);
	per = (data_mib << 20) / files;
	inos = malloc(files * sizeof(*inos));
	if (!inos)
		die("malloc", -ENOMEM);
	buf = malloc((per > (1u << 20) ? per : (1u << 20)) + 1);
	for (uint64_t i = 0; i < (per > (1u << 20) ? per : (1u << 20)); i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);

	/* 1. the image, a clean unmount, a timed mount */
	fs = open_fs(path);
	{
		struct br_cred cr = { 0, 0 };
		uint64_t d = 1;
		struct stat st;
		char name[32];
		int err;

		for (uint64_t i = 0; i < files; i++) {
			if (i % 1000 == 0) {
				snprintf(name, sizeof(name), "d%llu", (unsigned long long)(i / 1000));
				err = br_fs_mkdir(fs, 1, name, 0755, &cr, &st);
				if (err)
					die("mkdir", err);
				d = st.st_ino;
			}
			snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
			err = br_fs_mknod(fs, d, name, S_IFREG | 0644, 0, &cr, &st);
			if (err)
				die("mknod", err);
			buf[0] = (uint8_t)i;
			if (per && br_fs_write(fs, st.st_ino, buf, per, 0) != (ssize_t)per)
				die("write", -EIO);
			inos[i] = st.st_ino;
			br_fs_forget(fs, st.st_ino, 1);
		}
	}
	if (br_fs_close(fs))
		die("close", -EIO);
	t0 = now_ms();
	fs = open_fs(path);
	t1 = now_ms();
	br_ckpt_stats(fs, &cs);
	br_fs_info(fs, &info);
	printf("bench=mount files=%llu data_gib=%.2f mount_ms=%.1f ckpt_load_ms=%.1f inodes=%llu tail_buffers=%llu\n",
	       (unsigned long long)files, (double)(per * files) / (1 << 30),
	       t1 - t0, cs.load_ns / 1e6, (unsigned long long)info.inodes,
	       (unsigned long long)cs.tail_buffers);
	/* how long a checkpoint of all that blocks writers (DESIGN: a few
	 * milliseconds per GiB of metadata) */
	{
		struct writer w = { .fs = fs, .inos = inos, .n = files };
		struct writer idle = { .fs = fs, .inos = inos, .n = files };
		pthread_t t;

		if (pthread_create(&t, NULL, writer_run, &w))
			die("pthread_create", -EAGAIN);
		while (w.done < 100)	/* the writer is running */
			usleep(1000);
		if (br_ckpt_write(fs))
			die("checkpoint", -EIO);
		atomic_store(&w.stop, true);
		pthread_join(t, NULL);
		idle.limit = w.done;
		writer_run(&idle);
		br_ckpt_stats(fs, &cs);
		printf("bench=ckpt-block inodes=%llu blob_mib=%.1f block_ms=%.2f "
		       "ms_per_gib=%.1f cut_ms=%.3f batch_ms=%.3f cow_max_ms=%.3f cow_inodes=%llu "
		       "writer_max_ms=%.2f writer_max_ms_idle=%.2f writer_ops=%llu total_ms=%.1f\n",
		       (unsigned long long)cs.last_inodes, cs.last_blob_bytes / 1048576.0,
		       cs.last_block_ns / 1e6,
		       cs.last_block_ns / 1e6 / (cs.last_blob_bytes / 1073741824.0),
		       cs.last_cut_ns / 1e6, cs.last_walk_batch_ns / 1e6,
		       cs.last_cow_max_ns / 1e6, (unsigned long long)cs.last_cow_inodes,
		       w.max_ms, idle.max_ms, (unsigned long long)w.done,
		       cs.last_total_ns / 1e6);
	}
	fflush(stdout);

	/* 2. a tail of tail_mib MiB after the checkpoint, then a crash copy:
	 * the copy's mount rolls the whole tail forward */
	{
		struct br_cred cr = { 0, 0 };
		struct stat st;
		int err = br_fs_mknod(fs, 1, "tail", S_IFREG | 0644, 0, &cr, &st);

		if (err)
			die("mknod", err);
		for (uint64_t i = 0; i < tail_mib; i++)
			if (br_fs_write(fs, st.st_ino, buf, 1u << 20, i << 20) != 1 << 20)
				die("write", -EIO);
		err = br_fs_syncfs(fs);
		if (err)
			die("syncfs", err);
	}
	snprintf(copy, sizeof(copy), "%s.crash", path);
	copy_file(path, copy);
	br_fs_close(fs);
	unlink(path);
	{
		/* drop the copy from the page cache: replay reads with O_DIRECT
		 * anyway, but be explicit */
		int fd = open(copy, O_RDONLY);

		if (fd >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	t0 = now_ms();
	fs = open_fs(copy);
	t1 = now_ms();
	br_ckpt_stats(fs, &cs);
	br_fs_info(fs, &info);
	printf("bench=replay log_mib=%llu mib_s=%.0f mount_ms=%.1f tail_buffers=%llu\n",
	       (unsigned long long)tail_mib, tail_mib / ((t1 - t0) / 1e3), t1 - t0,
	       (unsigned long long)cs.tail_buffers);
	br_fs_close(fs);
	unlink(copy);
	free(buf);
	free(inos);
	return 0;
}
