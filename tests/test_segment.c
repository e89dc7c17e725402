/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/segment: the usage kept by the extent map is exact (compared with a
 * recount of the map after a seeded random run of writes, overwrites,
 * truncates, punches and unlinks, and after reopening); the allocator
 * never hands out a segment that the map, the durable checkpoint or
 * roll-forward still needs; segments are reused once their data died and
 * a checkpoint landed, so the log no longer just grows.
 *
 * Images (128 MiB, 1 MiB segments, 256 KiB buffers) go to a temporary
 * directory (brtest.h, removed at exit).  No io_uring:
 * exit 77.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "brtest.h"
#include <liburing.h>
#include <uuid/uuid.h>

#include "checkpoint.h"
#include "fsck.h"
#include "fsys.h"
#include "fsys_int.h"
#include "segment.h"
#include "super.h"

#define IMG_SIZE (128ull << 20)
#define SEG_SIZE (1ull << 20)
#define BUF_SIZE (256u << 10)
#define ROOT 1
#define NFILES 8
#define FILE_MAX (2u << 20)

static char img[4096];
static const struct br_cred cred = { 1000, 1000 };

static int format_image(const char *path)
{
	return br_format_file(path, IMG_SIZE, SEG_SIZE, BUF_SIZE, NULL, 0);
}

static struct br_fs *mount_path(const char *path);

static struct br_fs *mount_img(void)
{
	return mount_path(img);
}

static struct br_fs *mount_path(const char *path)
{
	struct br_fs_options o = { .root_uid = 1000, .root_gid = 1000,
				   .ckpt_bytes = UINT64_MAX,
				   .ckpt_secs = UINT32_MAX };
	struct br_fs *fs = NULL;
	char why[256] = "";
	int err = br_fs_open(path, &o, &fs, why, sizeof(why));

	if (err)
		fprintf(stderr, "br_fs_open: %s (%d)\n", why, err);
	assert_int_equal(err, 0);
	return fs;
}

static int setup(void **state)
{
	int fd;

	if (!br_test_have_io_uring())
		exit(77);
	snprintf(img, sizeof(img), "%s/test_segment.XXXXXX", br_test_dir());
	fd = mkstemp(img);
	if (fd < 0)
		return -1;
	close(fd);
	if (format_image(img))
		return -1;
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(img);
	return 0;
}

/* Usage kept by the map == recount of the map, segment by segment. */
static void assert_usage_exact(struct br_fs *fs)
{
	uint64_t n = fs->sb.seg_count;
	uint64_t *kept = calloc(n, sizeof(*kept));
	uint64_t *recount = calloc(n, sizeof(*recount));

	assert_non_null(kept);
	assert_non_null(recount);
	pthread_rwlock_rdlock(&fs->map_lock);
	br_seg_usage(fs->segs, kept);
	br_ckpt_usage(fs, recount, n);
	pthread_rwlock_unlock(&fs->map_lock);
	for (uint64_t i = 0; i < n; i++) {
		if (kept[i] != recount[i])
			fprintf(stderr, "segment %llu: kept %llu, recount %llu\n",
				(unsigned long long)i,
				(unsigned long long)kept[i],
				(unsigned long long)recount[i]);
		assert_int_equal(kept[i], recount[i]);
	}
	/* A free segment holds nothing the map reaches, and is neither the
	 * current nor the next log segment. */
	for (uint64_t i = 1; i < n; i++) {
		if (!br_seg_is_free(fs->segs, i))
			continue;
		assert_int_equal(recount[i], 0);
		pthread_mutex_lock(&fs->segs->lock);
		assert_true(i != fs->segs->cur && i != fs->segs->next);
		/* whatever killed its data is durable (segment.h, "Reuse") */
		assert_true(atomic_load(&fs->segs->v[i].dead_pos) <=
			    br_store_durable_pos(fs->store));
		assert_true(atomic_load(&fs->segs->v[i].newest) <
			    fs->segs->ckpt_seq);
		pthread_mutex_unlock(&fs->segs->lock);
	}
	free(kept);
	free(recount);
}

/* A model of the files: content and whether they exist. */
struct model {
	uint8_t *data[NFILES];
	uint64_t size[NFILES];
	uint64_t ino[NFILES];
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void model_check(struct br_fs *fs, struct model *m)
{
	uint8_t *buf = malloc(FILE_MAX);

	assert_non_null(buf);
	for (int f = 0; f < NFILES; f++) {
		struct stat st;
		char name[16];
		ssize_t n;

		snprintf(name, sizeof(name), "f%d", f);
		if (!m->ino[f]) {
			assert_int_equal(br_fs_lookup(fs, ROOT, name, &st),
					 -ENOENT);
			continue;
		}
		assert_int_equal(br_fs_lookup(fs, ROOT, name, &st), 0);
		br_fs_forget(fs, st.st_ino, 1);
		assert_int_equal((uint64_t)st.st_size, m->size[f]);
		n = br_fs_read(fs, st.st_ino, buf, FILE_MAX, 0);
		assert_int_equal(n, (ssize_t)m->size[f]);
		assert_memory_equal(buf, m->data[f], m->size[f]);
		m->ino[f] = st.st_ino;
	}
	free(buf);
}

/* One random operation on file f. */
static void random_op(struct br_fs *fs, struct model *m, uint64_t *seed,
		      uint8_t *buf)
{
	int f = (int)(rnd(seed) % NFILES), op = (int)(rnd(seed) % 10);
	char name[16];
	struct stat st;

	snprintf(name, sizeof(name), "f%d", f);
	if (!m->ino[f]) {
		assert_int_equal(br_fs_mknod(fs, ROOT, name, S_IFREG | 0644, 0,
					     &cred, &st), 0);
		br_fs_forget(fs, st.st_ino, 1);
		m->ino[f] = st.st_ino;
		m->size[f] = 0;
		memset(m->data[f], 0, FILE_MAX);
		return;
	}
	if (op < 6) {		/* write / overwrite */
		uint64_t off = rnd(seed) % FILE_MAX;
		uint64_t len = 1 + rnd(seed) % (256u << 10);

		if (off + len > FILE_MAX)
			len = FILE_MAX - off;
		for (uint64_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd(seed);
		assert_int_equal(br_fs_write(fs, m->ino[f], buf, len, off),
				 (ssize_t)len);
		memcpy(m->data[f] + off, buf, len);
		if (off + len > m->size[f])
			m->size[f] = off + len;
	} else if (op < 7) {	/* truncate (shrink or grow) */
		struct br_setattr sa = { .valid = BR_SET_SIZE,
					 .size = rnd(seed) % FILE_MAX };

		assert_int_equal(br_fs_setattr(fs, m->ino[f], &sa, &st), 0);
		if (sa.size < m->size[f])
			memset(m->data[f] + sa.size, 0, m->size[f] - sa.size);
		m->size[f] = sa.size;
	} else if (op < 9) {	/* punch */
		uint64_t off = rnd(seed) % FILE_MAX;
		uint64_t len = 1 + rnd(seed) % (512u << 10);

		assert_int_equal(br_fs_fallocate(fs, m->ino[f],
				 BR_FALLOC_PUNCH_HOLE | BR_FALLOC_KEEP_SIZE,
				 off, len), 0);
		if (off < m->size[f])
			memset(m->data[f] + off, 0,
			       (off + len < m->size[f] ? off + len : m->size[f]) -
			       off);
	} else {		/* unlink */
		assert_int_equal(br_fs_unlink(fs, ROOT, name), 0);
		m->ino[f] = 0;
		m->size[f] = 0;
	}
}

static void test_usage_is_exact_after_random_changes(void **state)
{
	struct model m = { 0 };
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	uint8_t *buf = malloc(256u << 10);
	struct br_fs *fs = mount_img();

	(void)state;
	assert_non_null(buf);
	for (int f = 0; f < NFILES; f++) {
		m.data[f] = calloc(1, FILE_MAX);
		assert_non_null(m.data[f]);
	}
	for (int i = 0; i < 3000; i++) {
		random_op(fs, &m, &seed, buf);
		if (i % 250 == 249) {
			assert_int_equal(br_fs_syncfs(fs), 0);
			assert_usage_exact(fs);
		}
		if (i % 700 == 699)
			assert_int_equal(br_ckpt_write(fs), 0);
	}
	assert_int_equal(br_fs_syncfs(fs), 0);
	assert_usage_exact(fs);
	model_check(fs, &m);
	assert_int_equal(br_fs_close(fs), 0);

	/* Checkpoint load + roll-forward rebuild the same usage. */
	fs = mount_img();
	assert_usage_exact(fs);
	model_check(fs, &m);
	assert_int_equal(br_fs_close(fs), 0);
	for (int f = 0; f < NFILES; f++)
		free(m.data[f]);
	free(buf);
}

/*
 * Overwrite the same 24 MiB (a fifth of the 126 MiB log) for five times the
 * size of the log, with a checkpoint now and then: without reuse the log
 * would fill after ~126 MiB.  Every segment handed out was free by the
 * rules (checked at every checkpoint), and the content survives a reopen
 * (crash-free) and a crash copy taken mid-run.
 */
static void test_segments_are_reused_and_never_needed(void **state)
{
	const uint64_t span = 24u << 20, chunk = 256u << 10;
	uint64_t seed = 42, written = 0, ino;
	uint8_t *model = calloc(1, span), *buf = malloc(span);
	uint8_t *snap = malloc(span);
	struct br_fs *fs = mount_img();
	char crash[4200];
	struct stat st;
	int i = 0;

	(void)state;
	assert_non_null(model);
	assert_non_null(buf);
	assert_int_equal(br_fs_mknod(fs, ROOT, "big", S_IFREG | 0644, 0, &cred,
				     &st), 0);
	ino = st.st_ino;
	while (written < 5 * IMG_SIZE) {
		uint64_t off = rnd(&seed) % (span / chunk) * chunk;

		for (uint64_t k = 0; k < chunk; k += 8)
			*(uint64_t *)(model + off + k) = rnd(&seed);
		assert_int_equal(br_fs_write(fs, ino, model + off, chunk, off),
				 (ssize_t)chunk);
		written += chunk;
		if (++i % 64 == 0) {
			assert_int_equal(br_ckpt_write(fs), 0);
			assert_usage_exact(fs);
		}
		if (i == 1000) {	/* well after reuse began */
			assert_true(atomic_load(&fs->segs->reused) > 0);
			assert_int_equal(br_fs_fsync(fs, ino, false), 0);
			memcpy(snap, model, span);
			snprintf(crash, sizeof(crash), "%s.crash", img);
			assert_int_equal(br_test_copy(img, crash), 0);
		}
	}
	assert_int_equal(br_fs_fsync(fs, ino, false), 0);
	assert_true(atomic_load(&fs->segs->reused) > 0);
	assert_int_equal(br_store_error(fs->store), 0);
	assert_int_equal(br_fs_read(fs, ino, buf, span, 0), (ssize_t)span);
	assert_memory_equal(buf, model, span);
	br_fs_forget(fs, ino, 1);
	assert_int_equal(br_fs_close(fs), 0);

	fs = mount_img();
	assert_usage_exact(fs);
	assert_int_equal(br_fs_lookup(fs, ROOT, "big", &st), 0);
	assert_int_equal(br_fs_read(fs, st.st_ino, buf, span, 0), (ssize_t)span);
	assert_memory_equal(buf, model, span);
	br_fs_forget(fs, st.st_ino, 1);
	assert_int_equal(br_fs_close(fs), 0);

	/* The crash copy: everything fsync'd before it was taken. */
	fs = mount_path(crash);
	assert_usage_exact(fs);
	assert_int_equal(br_fs_lookup(fs, ROOT, "big", &st), 0);
	assert_int_equal(br_fs_read(fs, st.st_ino, buf, span, 0), (ssize_t)span);
	assert_memory_equal(buf, snap, span);
	br_fs_forget(fs, st.st_ino, 1);
	assert_int_equal(br_fs_close(fs), 0);
	unlink(crash);
	free(model);
	free(buf);
	free(snap);
}

/* Freed segments are punched out of the image file (discard=on). */
static void test_freed_segments_are_discarded(void **state)
{
	struct br_fs *fs = mount_img();
	uint8_t *buf = calloc(1, 4u << 20);
	struct stat st, fst;
	uint64_t before;

	(void)state;
	assert_non_null(buf);
	memset(buf, 0xa5, 4u << 20);
	assert_int_equal(br_fs_mknod(fs, ROOT, "x", S_IFREG | 0644, 0, &cred,
				     &st), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(br_fs_write(fs, st.st_ino, buf, 4u << 20,
					     (uint64_t)i << 22), 4 << 20);
	br_fs_forget(fs, st.st_ino, 1);
	assert_int_equal(br_fs_syncfs(fs), 0);
	assert_int_equal(stat(img, &fst), 0);
	before = (uint64_t)fst.st_blocks * 512;
	assert_int_equal(br_fs_unlink(fs, ROOT, "x"), 0);
	assert_int_equal(br_ckpt_write(fs), 0);	/* discards what it freed */
	assert_true(atomic_load(&fs->segs->discards) > 0);
	assert_int_equal(stat(img, &fst), 0);
	/* at least 24 of the 32 MiB went back to the file system */
	assert_true((uint64_t)fst.st_blocks * 512 + (24u << 20) <= before);
	assert_int_equal(br_fs_close(fs), 0);
	free(buf);
}

static void fill(uint8_t *b, size_t len, int f, uint64_t off)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = (uint64_t)f << 48 ^ (off + i) * 0x9e3779b97f4a7c15ull;

		memcpy(b + i, &v, 8);
	}
}

static uint64_t avail(struct br_fs *fs)
{
	struct statvfs sv;

	assert_int_equal(br_fs_statfs(fs, &sv), 0);
	assert_true(sv.f_bavail <= sv.f_blocks);
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static void check_files(struct br_fs *fs, int nf, const bool *gone,
			const uint64_t *sizes, uint8_t *a, uint8_t *b)
{
	for (int f = 0; f < nf; f++) {
		char name[16];
		struct stat st;

		snprintf(name, sizeof(name), "f%d", f);
		if (gone[f]) {
			assert_int_equal(br_fs_lookup(fs, ROOT, name, &st),
					 -ENOENT);
			continue;
		}
		assert_int_equal(br_fs_lookup(fs, ROOT, name, &st), 0);
		assert_int_equal((uint64_t)st.st_size, sizes[f]);
		for (uint64_t off = 0; off < sizes[f]; off += 256u << 10) {
			fill(a, 256u << 10, f, off);
			assert_int_equal(br_fs_read(fs, st.st_ino, b, 256u << 10,
						    off), 256 << 10);
			assert_memory_equal(a, b, 256u << 10);
		}
		br_fs_forget(fs, st.st_ino, 1);
	}
}

/*
 * Fill the log: user writes stop with ENOSPC (the store does not latch),
 * so do new names (the reserve is left to the records that give space
 * back), unlinking gives the space back (statfs says so, exactly the
 * freed segments), names and writing work again, and a reopen shows the
 * same files and the same free space.
 */
static void test_full_log_gives_enospc_and_deletes_bring_space_back(void **state)
{
	const uint32_t chunk = 256u << 10;
	uint8_t *a = malloc(chunk), *b = malloc(chunk);
	uint64_t sizes[64] = { 0 }, total = 0, av_full, av_del, av_reopen;
	bool gone[64] = { false };
	struct br_fs *fs = mount_img();
	ssize_t n = 0;
	struct stat st;
	int nf = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_true(avail(fs) > 120u << 20);
	while (n >= 0 && nf < 64) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", nf);
		assert_int_equal(br_fs_mknod(fs, ROOT, name, S_IFREG | 0644, 0,
					     &cred, &st), 0);
		for (uint64_t off = 0; off < (4u << 20); off += chunk) {
			fill(a, chunk, nf, off);
			n = br_fs_write(fs, st.st_ino, a, chunk, off);
			if (n < 0)
				break;
			assert_int_equal(n, chunk);
			sizes[nf] += chunk;
			total += chunk;
		}
		br_fs_forget(fs, st.st_ino, 1);
		nf++;
	}
	assert_int_equal(n, -ENOSPC);
	assert_int_equal(br_store_error(fs->store), 0);
	/* 126 MiB of log, 2 segments of reserve.  Placement wastes the
	 * tail of a segment that the next buffer does not fit in: with
	 * 256 KiB buffers in 1 MiB segments and 256 KiB writes (a record
	 * plus a 72-byte remainder each) that is ~25 %. */
	fprintf(stderr, "filled: %llu MiB, avail %llu KiB\n", (unsigned long long)(total >> 20), (unsigned long long)(avail(fs) >> 10));
	assert_true(total >= 85u << 20);
	av_full = avail(fs);
	assert_true(av_full < 2u << 20);
	assert_int_equal(br_fs_mkdir(fs, ROOT, "d", 0755, &cred, &st), -ENOSPC);
	assert_int_equal(br_fs_syncfs(fs), 0);

	/* delete every other file: whole segments die */
	for (int f = 0; f < nf; f += 2) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", f);
		assert_int_equal(br_fs_unlink(fs, ROOT, name), 0);
		gone[f] = true;
	}
	av_del = avail(fs);
	assert_true(av_del >= av_full + (40u << 20));
	assert_int_equal(br_fs_mkdir(fs, ROOT, "d", 0755, &cred, &st), 0);
	br_fs_forget(fs, st.st_ino, 1);
	/* and it can be written again */
	assert_int_equal(br_fs_lookup(fs, ROOT, "f0", &st), -ENOENT);
	assert_int_equal(br_fs_mknod(fs, ROOT, "f0", S_IFREG | 0644, 0, &cred,
				     &st), 0);
	sizes[0] = 0;
	for (uint64_t off = 0; off < (16u << 20); off += chunk) {
		fill(a, chunk, 0, off);
		assert_int_equal(br_fs_write(fs, st.st_ino, a, chunk, off),
				 chunk);
		sizes[0] += chunk;
	}
	gone[0] = false;
	assert_int_equal(br_fs_fsync(fs, st.st_ino, false), 0);
	br_fs_forget(fs, st.st_ino, 1);
	check_files(fs, nf, gone, sizes, a, b);
	av_del = avail(fs);
	assert_int_equal(br_fs_close(fs), 0);

	fs = mount_img();
	assert_usage_exact(fs);
	check_files(fs, nf, gone, sizes, a, b);
	av_reopen = avail(fs);
	/* the same, give or take the segment the close's checkpoint used */
	assert_true(av_reopen + (2u << 20) >= av_del &&
		    av_reopen <= av_del + (2u << 20));
	assert_int_equal(br_fs_close(fs), 0);
	free(a);
	free(b);
}

/* df counts bytes written into the open buffer (placed in a segment only
 * when it is sealed): a fill that trusts df must not get less. */
static void test_statfs_counts_the_open_buffer(void **state)
{
	const uint32_t len = 128u << 10;
	uint8_t *a = malloc(len);
	struct br_fs *fs = mount_img();
	uint64_t before, open, sealed;
	struct stat st;

	(void)state;
	assert_non_null(a);
	assert_true(len < fs->sb.buf_size);	/* stays open */
	fill(a, len, 1, 0);
	assert_int_equal(br_fs_mknod(fs, ROOT, "f", S_IFREG | 0644, 0, &cred,
				     &st), 0);
	before = avail(fs);
	assert_int_equal(br_fs_write(fs, st.st_ino, a, len, 0), len);
	open = avail(fs);
	assert_true(open + len <= before);
	/* sealed and placed: the same bytes, counted the other way now */
	assert_int_equal(br_fs_fsync(fs, st.st_ino, false), 0);
	sealed = avail(fs);
	assert_true(sealed + len <= before);
	assert_true(sealed <= open + fs->sb.buf_size);
	br_fs_forget(fs, st.st_ino, 1);
	assert_int_equal(br_fs_close(fs), 0);
	free(a);
}

struct alloc_arg {
	struct br_segtab *t;
	uint64_t next;
	_Atomic int done;
};

static void *alloc_thread(void *arg)
{
	struct alloc_arg *a = arg;

	br_seg_alloc(a->t, a->t->seg_size, &a->next);
	atomic_store(&a->done, 1);
	return NULL;
}

/* A read that looked up extents before a segment died must finish its
 * pread before that segment is handed out again (segment.h, "Readers"). */
static void test_segment_reuse_waits_for_reads_in_flight(void **state)
{
	struct br_segtab t;
	struct alloc_arg a = { .t = &t };
	pthread_t th;

	(void)state;
	assert_int_equal(br_seg_init(&t, 8, 1 << 20, -1, false), 0);
	br_seg_read_begin(&t);
	pthread_create(&th, NULL, alloc_thread, &a);
	usleep(200 * 1000);
	assert_int_equal(atomic_load(&a.done), 0);	/* held back */
	br_seg_read_end(&t);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&a.done), 1);
	assert_true(a.next != 0);	/* and then it does hand one out */
	br_seg_destroy(&t);
}

/*
 * The cleaner's second head (segment.h, "Cleaner head"): it is taken
 * from the free segments, is then neither free nor a cleaning candidate
 * nor handed to the log while the cleaner fills it, even while nothing
 * points into it yet, and carries the age of the data moved in rather
 * than a fresh one.  Dropped, it is an ordinary segment again.
 */
static void test_cleaner_head_is_kept_from_the_allocator(void **state)
{
	const uint64_t seg = 1 << 20;
	struct br_seg_cand cand[8];
	struct br_segtab t;
	uint64_t h, next, now, gen, nfree;
	size_t n;

	(void)state;
	assert_int_equal(br_seg_init(&t, 8, seg, -1, false), 0);
	br_seg_set_log(&t, 1 * seg, 2 * seg);
	br_seg_placed(&t, 1 * seg, 500);
	nfree = br_seg_nfree(&t);
	assert_int_equal(nfree, 5);		/* 3..7 */
	gen = br_seg_gen(&t, 3);
	assert_int_equal(br_seg_take_head(&t, &h), 0);
	assert_int_equal(h, 3);			/* lowest after the log's */
	assert_int_equal(br_seg_gen(&t, 3), gen + 1);
	assert_false(br_seg_is_free(&t, h));	/* empty, yet kept */
	assert_int_equal(br_seg_nfree(&t), nfree - 1);
	/* the log moving on never gets the head */
	assert_int_equal(br_seg_alloc(&t, 2 * seg, &next), 0);
	assert_true(next != h * seg);
	/* moved data keeps its age: an old victim's, not the clock's; the
	 * time it went in is the clock's (the score's decay rate) */
	br_seg_add(&t, h * seg, 4096);
	br_seg_age(&t, h, 7, 490);
	n = br_seg_candidates(&t, cand, 8, &now);
	assert_int_equal(now, 500);
	for (size_t i = 0; i < n; i++)
		assert_true(cand[i].seg != h);	/* open: not a candidate */
	br_seg_drop_head(&t);
	n = br_seg_candidates(&t, cand, 8, &now);
	assert_int_equal(n, 1);
	assert_int_equal(cand[0].seg, h);
	assert_int_equal(cand[0].newest, 7);
	assert_int_equal(cand[0].wrote, 490);
	/* a segment of the log was written when its newest buffer was */
	br_seg_add(&t, 1 * seg, 4096);
	br_seg_set_log(&t, 2 * seg, next);
	n = br_seg_candidates(&t, cand, 8, &now);
	assert_int_equal(n, 2);
	assert_int_equal(cand[0].seg, 1);
	assert_int_equal(cand[0].wrote, 500);
	br_seg_sub(&t, 1 * seg, 4096);
	/* its data gone (and no checkpoint needing it): free again */
	br_seg_sub(&t, h * seg, 4096);
	br_seg_ckpt_durable(&t, 501);
	assert_true(br_seg_is_free(&t, h));
	br_seg_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segment_reuse_waits_for_reads_in_flight),
		cmocka_unit_test(test_cleaner_head_is_kept_from_the_allocator),
		cmocka_unit_test_setup_teardown(test_usage_is_exact_after_random_changes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_segments_are_reused_and_never_needed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_freed_segments_are_discarded,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_log_gives_enospc_and_deletes_bring_space_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_statfs_counts_the_open_buffer,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
