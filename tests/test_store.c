/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The whole write pipeline against a real O_DIRECT file: ring -> io_uring
 * -> disk, completions, group commit, retries and latched failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#include "crc32c.h"
#include "format.h"
#include "store.h"

#define LOG_START 4096u
#define FSID 0x1122334455667788ull
#define MAX_SEQ (1u << 16)

struct env {
	char path[300];
	int fd;			/* plain fd for reading back */
	struct br_store *s;
	pthread_mutex_t lock;
	uint64_t addr_of[MAX_SEQ];	/* from on_complete */
	uint32_t used_of[MAX_SEQ];
	uint32_t nonce;			/* the store's, kept past close */
	unsigned completions, failed;
	uint64_t last_done_seq;		/* completion order ... */
	unsigned out_of_order;		/* ... and how often it went back */
	/* fault injection */
	_Atomic int fail_from_addr_on;	/* fail writes at addr >= this (if > 0) */
	uint64_t fail_addr;
	_Atomic int transient;		/* fail this many attempts, then ok */
	_Atomic int shorten;		/* make this many writes short */
};

static unsigned scale(void)
{
	const char *e = getenv("BR_TEST_SCALE");

	return e && atoi(e) > 0 ? (unsigned)atoi(e) : 1;
}

static void on_complete(void *ctx, const struct br_store_done *d)
{
	struct env *e = ctx;

	pthread_mutex_lock(&e->lock);
	if (d->err) {
		e->failed++;
	} else {
		assert_true(d->seq < MAX_SEQ);
		e->addr_of[d->seq] = d->addr;
		if (d->seq < e->last_done_seq)
			e->out_of_order++;
		e->last_done_seq = d->seq;
		e->used_of[d->seq] = d->used;
		e->completions++;
	}
	pthread_mutex_unlock(&e->lock);
}

static int fault(void *ctx, uint64_t off, uint32_t len, int res)
{
	struct env *e = ctx;

	(void)len;
	if (atomic_load(&e->fail_from_addr_on) && off >= e->fail_addr)
		return -EIO;
	if (atomic_load(&e->transient) > 0) {
		atomic_fetch_sub(&e->transient, 1);
		return -EIO;
	}
	if (res > 8192 && atomic_load(&e->shorten) > 0) {
		atomic_fetch_sub(&e->shorten, 1);
		return 4096;	/* the kernel wrote only the first block */
	}
	return res;
}

/* Segment geometry for the next env_new (0: one segment) */
static uint64_t g_seg_size;
static int (*g_alloc_seg)(void *ctx, uint64_t seg, uint64_t *next);

static struct env *env_new(uint64_t log_size, unsigned nbuf, uint32_t bsize,
			   enum br_write_mode mode)
{
	struct env *e = calloc(1, sizeof(*e));
	struct br_store_config c = {
		.fd = -1, .nbuf = nbuf, .buf_size = bsize, .mode = mode,
		.log_start = LOG_START, .log_end = LOG_START + log_size,
		.next_addr = LOG_START, .next_seq = 1, .fsid = FSID,
		.on_complete = on_complete, .fault = fault,
		.seg_size = g_seg_size, .alloc_seg = g_alloc_seg,
	};
	int fd;

	assert_non_null(e);
	snprintf(e->path, sizeof(e->path), "%s/br-store-XXXXXX", br_test_dir());
	fd = mkstemp(e->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, LOG_START + log_size), 0);
	e->fd = fd;
	pthread_mutex_init(&e->lock, NULL);
	c.path = e->path;
	c.ctx = e;
	c.fault_ctx = e;
	assert_int_equal(br_store_open(&c, &e->s), 0);
	e->nonce = br_store_nonce(e->s);
	assert_true(e->nonce != 0);
	return e;
}

static void env_free(struct env *e)
{
	if (e->s)
		br_store_close(e->s);
	close(e->fd);
	unlink(e->path);
	free(e);
}

/* Read the buffer of generation seq back from the file and check it. */
static uint8_t *read_buffer(struct env *e, uint64_t seq, uint32_t *len)
{
	struct br_buf_header h;
	uint8_t *b;
	uint64_t addr = e->addr_of[seq];

	assert_int_equal(pread(e->fd, &h, sizeof(h), (off_t)addr), sizeof(h));
	assert_int_equal(br_le32_get(h.magic), BR_BUF_MAGIC);
	assert_int_equal(br_le64_get(h.seq), seq);
	assert_true(br_le64_get(h.fsid) == FSID);
	assert_int_equal(br_le32_get(h.span) % 4096, 0);
	/* the mount chain: the first buffer links to the previous mount's
	 * nonce (0 here, as after mkfs), every later one to this mount's */
	assert_int_equal(br_le32_get(h.nonce), e->nonce);
	assert_int_equal(br_le32_get(h.prev_nonce), seq == 1 ? 0 : e->nonce);
	*len = br_le32_get(h.len);
	b = malloc(sizeof(h) + *len);
	assert_int_equal(pread(e->fd, b, sizeof(h) + *len, (off_t)addr),
			 (ssize_t)(sizeof(h) + *len));
	assert_int_equal(br_crc32c(0, b + 4, sizeof(h) + *len - 4),
			 br_le32_get(h.crc));
	return b;
}

static void test_store_append_sync_reads_back_from_disk(void **state)
{
	struct env *e = env_new(64 << 20, 4, 1 << 20, BR_WRITE_TAIL);
	const char msg[] = "hello, log";
	uint64_t pos;
	uint32_t len;
	uint8_t *b;
	struct br_store_stats st;

	(void)state;
	assert_int_equal(br_store_append(e->s, msg, sizeof(msg), &pos), 0);
	assert_int_equal(br_pos_seq(pos), 1);
	assert_true(br_store_durable_pos(e->s) < pos);
	assert_int_equal(br_store_sync(e->s, pos), 0);
	assert_true(br_store_durable_pos(e->s) >= pos);
	assert_int_equal(e->addr_of[1], LOG_START);
	b = read_buffer(e, 1, &len);
	assert_int_equal(len, br_rec_padded(sizeof(msg)));
	assert_memory_equal(b + sizeof(struct br_buf_header), msg, sizeof(msg));
	free(b);
	/* a second sync of the same position costs nothing */
	br_store_stats(e->s, &st);
	assert_int_equal(br_store_sync(e->s, pos), 0);
	{
		struct br_store_stats st2;

		br_store_stats(e->s, &st2);
		assert_int_equal(st2.dev_flushes, st.dev_flushes);
	}
	/* the next buffer goes right after the 4 KiB the first one took */
	assert_int_equal(br_store_append(e->s, msg, sizeof(msg), &pos), 0);
	assert_int_equal(br_pos_seq(pos), 2);
	assert_int_equal(br_store_sync(e->s, pos), 0);
	assert_int_equal(e->addr_of[2], LOG_START + 4096);
	assert_int_equal(br_store_append(e->s, msg, br_store_max_record(e->s) + 1,
					 NULL), -E2BIG);
	env_free(e);
}

/* ---- stress: 8 threads, 200k records -------------------------------- */

#define REC_MAGIC 0x53545231u

struct rec {
	uint32_t magic;
	uint32_t len;
	uint32_t thread;
	uint32_t n;
	uint32_t crc;		/* of the payload */
	uint32_t pad;
};

struct stress {
	struct env *e;
	unsigned per_thread;
	uint64_t *pos_of;
	uint32_t *off_of;
};

struct warg {
	struct stress *st;
	unsigned id;
};

/* Byte i of record k of writer id */
static uint8_t fill_byte(unsigned id, unsigned k, size_t i)
{
	return (uint8_t)(id * 131 + k * 7 + i);
}

static void fill(uint8_t *p, size_t n, unsigned id, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = fill_byte(id, k, i);
}

static void *writer(void *arg)
{
	struct warg *a = arg;
	struct stress *st = a->st;
	unsigned seed = a->id + 1;

	for (unsigned n = 0; n < st->per_thread; n++) {
		uint32_t len = (uint32_t)(1 + rand_r(&seed) % 8192);
		uint32_t total = (uint32_t)sizeof(struct rec) + len;
		struct rec h = { REC_MAGIC, total, a->id, n, 0, 0 };
		struct br_resv r;

		if (br_store_reserve(st->e->s, total, &r))
			abort();
		fill(r.ptr + sizeof(h), len, a->id, n);
		h.crc = br_crc32c(0, r.ptr + sizeof(h), len);
		memcpy(r.ptr, &h, sizeof(h));
		st->pos_of[(size_t)a->id * st->per_thread + n] = r.pos;
		st->off_of[(size_t)a->id * st->per_thread + n] = r.off;
		br_store_commit(st->e->s, &r);
	}
	return NULL;
}

/* A record's body must be exactly what its writer filled (and what it
 * took the CRC of).  On a mismatch, say where and what is there instead:
 * zeroes, or whose bytes. */
static void check_body(const uint8_t *p, size_t n, const struct rec *h,
		       uint64_t seq, uint32_t off)
{
	size_t i = 0;

	while (i < n && p[i] == fill_byte(h->thread, h->n, i))
		i++;
	if (i == n && br_crc32c(0, p, n) == h->crc)
		return;
	print_error("record %u/%u (buffer %llu, offset %u, body %zu bytes): "
		    "first bad byte at %zu:", h->thread, h->n,
		    (unsigned long long)seq, off, n, i);
	for (size_t j = i; j < n && j < i + 32; j++)
		print_error(" %02x", p[j]);
	print_error("\n");
	if (i + sizeof(struct rec) <= n) {
		struct rec o;

		memcpy(&o, p + i, sizeof(o));
		if (o.magic == REC_MAGIC)
			print_error("  a record header is there: %u/%u, %u "
				    "bytes\n", o.thread, o.n, o.len);
	}
	fail_msg("record %u/%u: body differs from what its writer wrote",
		 h->thread, h->n);
}

static void run_store_stress(enum br_write_mode mode, unsigned threads,
			     unsigned per_thread)
{
	struct env *e = env_new(2ull << 30, 4, 1 << 20, mode);
	struct stress st = { e, per_thread, NULL, NULL };
	size_t total = (size_t)threads * per_thread;
	struct warg args[32];
	pthread_t t[32];
	uint8_t *seen = calloc(total, 1);
	uint64_t last = 0;
	size_t found = 0;

	st.pos_of = calloc(total, sizeof(uint64_t));
	st.off_of = calloc(total, sizeof(uint32_t));
	for (unsigned i = 0; i < threads; i++) {
		args[i] = (struct warg){ &st, i };
		pthread_create(&t[i], NULL, writer, &args[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < total; i++)
		if (st.pos_of[i] > last)
			last = st.pos_of[i];
	assert_int_equal(br_store_sync(e->s, last), 0);
	assert_int_equal(br_store_close(e->s), 0);
	e->s = NULL;

	/* Every record is on disk exactly once, intact, at the address its
	 * position says: addr_of[seq] + off. */
	for (uint64_t seq = 1; seq <= br_pos_seq(last); seq++) {
		uint32_t len, off = sizeof(struct br_buf_header);
		uint8_t *b = read_buffer(e, seq, &len);

		if (seq > 1)	/* linear log: buffers back to back */
			assert_true(e->addr_of[seq] > e->addr_of[seq - 1]);
		while (off < sizeof(struct br_buf_header) + len) {
			struct rec h;
			size_t id;

			memcpy(&h, b + off, sizeof(h));
			assert_int_equal(h.magic, REC_MAGIC);
			id = (size_t)h.thread * per_thread + h.n;
			assert_true(h.thread < threads && h.n < per_thread);
			assert_int_equal(seen[id], 0);
			seen[id] = 1;
			found++;
			assert_int_equal(br_pos_seq(st.pos_of[id]), seq);
			assert_int_equal(st.off_of[id], off);
			check_body(b + off + sizeof(h), h.len - sizeof(h),
				   &h, seq, off);
			off += br_rec_padded(h.len);
		}
		assert_int_equal(off, sizeof(struct br_buf_header) + len);
		free(b);
	}
	assert_int_equal(found, total);
	/* serialised: each write completed before the next one started */
	if (mode == BR_WRITE_SERIAL)
		assert_int_equal(e->out_of_order, 0);
	print_message("%s: %llu buffers, %u completed out of order\n",
		      mode == BR_WRITE_SERIAL ? "serial" : "tail",
		      (unsigned long long)br_pos_seq(last), e->out_of_order);
	free(seen);
	free(st.pos_of);
	free(st.off_of);
	env_free(e);
}

static void test_store_8_threads_200k_records_land_once_intact(void **state)
{
	(void)state;
	run_store_stress(BR_WRITE_TAIL, 8, 25000 / scale());
}

static void test_store_serial_mode_writes_in_log_order(void **state)
{
	(void)state;
	run_store_stress(BR_WRITE_SERIAL, 8, 5000 / scale());
}

/* ---- group commit ---------------------------------------------------- */

struct gc {
	struct env *e;
	unsigned rounds;
	uint64_t *pos;
	pthread_barrier_t round;	/* the 8 waiters of a round sync together */
};

struct gcarg {
	struct gc *g;
	unsigned id;
};

static void *gc_worker(void *arg)
{
	struct gcarg *a = arg;
	uint8_t rec[512];

	for (unsigned i = 0; i < a->g->rounds; i++) {
		uint64_t pos;

		memset(rec, (int)(a->id * 16 + i), sizeof(rec));
		memcpy(rec, &a->id, sizeof(a->id));
		memcpy(rec + 4, &i, sizeof(i));
		if (br_store_append(a->g->e->s, rec, sizeof(rec), &pos))
			abort();
		/* Everybody has a record in; now all 8 wait at once, however
		 * slow the machine (TSan) makes the appends. */
		pthread_barrier_wait(&a->g->round);
		if (br_store_sync(a->g->e->s, pos))
			abort();
		/* durable means durable: the prefix covers us on return */
		if (br_store_durable_pos(a->g->e->s) < pos)
			abort();
		a->g->pos[a->id * a->g->rounds + i] = pos;
	}
	return NULL;
}

static void test_store_group_commit_shares_device_flushes(void **state)
{
	struct env *e = env_new(256 << 20, 8, 256 << 10, BR_WRITE_TAIL);
	struct gc g = { .e = e, .rounds = 300 / scale() };
	struct gcarg args[8];
	pthread_t t[8];
	struct br_store_stats st;
	uint64_t waiters = 8ull * g.rounds;

	(void)state;
	g.pos = calloc(waiters, sizeof(uint64_t));
	pthread_barrier_init(&g.round, NULL, 8);
	for (unsigned i = 0; i < 8; i++) {
		args[i] = (struct gcarg){ &g, i };
		pthread_create(&t[i], NULL, gc_worker, &args[i]);
	}
	for (unsigned i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	br_store_stats(e->s, &st);
	print_message("group commit: %llu syncs, %llu device flushes "
		      "(registered buffers: %s)\n", (unsigned long long)waiters,
		      (unsigned long long)st.dev_flushes,
		      st.fixed_bufs ? "yes" : "no");
	assert_true(st.dev_flushes > 0);
	/* without group commit every waiter flushes: 8 per round */
	assert_true(st.dev_flushes * 2 < waiters);
	/* every synced record is on disk where its position says */
	for (uint64_t i = 0; i < waiters; i++) {
		uint64_t seq = br_pos_seq(g.pos[i]);
		uint32_t end = (uint32_t)g.pos[i];
		uint8_t buf[512];
		unsigned id, n;

		assert_int_equal(pread(e->fd, buf, 512,
				       (off_t)(e->addr_of[seq] + end - 512)), 512);
		memcpy(&id, buf, 4);
		memcpy(&n, buf + 4, 4);
		assert_int_equal(id * g.rounds + n, i);
	}
	free(g.pos);
	pthread_barrier_destroy(&g.round);
	env_free(e);
}

/* ---- failures -------------------------------------------------------- */

static void test_store_transient_and_short_writes_are_retried(void **state)
{
	struct env *e = env_new(64 << 20, 4, 1 << 20, BR_WRITE_TAIL);
	uint8_t rec[60000];
	uint64_t pos = 0;
	struct br_store_stats st;

	(void)state;
	atomic_store(&e->transient, 3);	/* fewer than max_retries */
	atomic_store(&e->shorten, 5);
	for (int i = 0; i < 100; i++) {
		memset(rec, i, sizeof(rec));
		assert_int_equal(br_store_append(e->s, rec, sizeof(rec), &pos), 0);
	}
	assert_int_equal(br_store_sync(e->s, pos), 0);
	br_store_stats(e->s, &st);
	assert_true(st.retries >= 8);
	assert_int_equal(br_store_error(e->s), 0);
	/* the last record is intact on disk despite the short writes */
	{
		uint32_t len;
		uint8_t *b = read_buffer(e, br_pos_seq(pos), &len);

		assert_int_equal(b[sizeof(struct br_buf_header) + len - 1 -
				   (br_rec_padded(60000) - 60000)], 99);
		free(b);
	}
	env_free(e);
}

static void test_store_persistent_failure_latches_eio(void **state)
{
	struct env *e = env_new(64 << 20, 4, 256 << 10, BR_WRITE_TAIL);
	uint8_t rec[1000];
	uint64_t good, bad = 0;
	int err = 0;

	(void)state;
	memset(rec, 1, sizeof(rec));
	assert_int_equal(br_store_append(e->s, rec, sizeof(rec), &good), 0);
	assert_int_equal(br_store_sync(e->s, good), 0);
	/* from now on the device fails every write */
	e->fail_addr = br_store_next_addr(e->s);
	atomic_store(&e->fail_from_addr_on, 1);
	for (int i = 0; i < 2000 && !err; i++)
		err = br_store_append(e->s, rec, sizeof(rec), &bad);
	if (!err)
		err = br_store_sync(e->s, bad);
	assert_int_equal(err, -EIO);
	/* latched: later writes and syncs fail too */
	assert_int_equal(br_store_append(e->s, rec, sizeof(rec), NULL), -EIO);
	assert_int_equal(br_store_sync(e->s, bad), -EIO);
	assert_int_equal(br_store_error(e->s), -EIO);
	/* nothing at or after the failed buffer is reported durable ... */
	assert_true(br_store_durable_pos(e->s) < br_pos_make(br_pos_seq(bad), 0));
	/* ... and what was durable before stays durable */
	assert_true(br_store_durable_pos(e->s) >= good);
	assert_int_equal(br_store_sync(e->s, good), 0);
	pthread_mutex_lock(&e->lock);
	assert_true(e->failed >= 1);	/* reported before waiters woke */
	pthread_mutex_unlock(&e->lock);
	assert_int_equal(br_store_close(e->s), -EIO);
	e->s = NULL;
	env_free(e);
}

/* A full log refuses new records with -ENOSPC, but every record it
 * accepted is written and durable, and nothing latches: the store stays
 * usable (and closes cleanly) once room comes back. */
static void test_store_full_log_returns_enospc(void **state)
{
	struct env *e = env_new(1 << 20, 4, 256 << 10, BR_WRITE_TAIL);
	uint8_t rec[8000];
	uint64_t pos = 0, last = 0, first;
	int err = 0;

	(void)state;
	memset(rec, 9, sizeof(rec));
	assert_int_equal(br_store_append(e->s, rec, sizeof(rec), &first), 0);
	assert_int_equal(br_store_sync(e->s, first), 0);
	for (int i = 0; i < 1000 && !err; i++) {
		err = br_store_append(e->s, rec, sizeof(rec), &pos);
		if (!err)
			last = pos;
	}
	assert_int_equal(err, -ENOSPC);
	assert_true(last > first);
	assert_int_equal(br_store_error(e->s), 0);
	assert_int_equal(br_store_sync(e->s, last), 0);
	assert_true(br_store_durable_pos(e->s) >= last);
	assert_int_equal(br_store_append(e->s, rec, sizeof(rec), NULL),
			 -ENOSPC);
	assert_int_equal(br_store_sync(e->s, first), 0);
	assert_true(br_store_next_addr(e->s) <= LOG_START + (1 << 20));
	assert_int_equal(br_store_close(e->s), 0);
	e->s = NULL;
	env_free(e);
}

/* ---- segments ------------------------------------------------------- */

#define SEG (1u << 20)

/* Hand out segments from the end of the log backwards: the log must follow
 * next_seg, not adjacency. */
static int alloc_backwards(void *ctx, uint64_t seg, uint64_t *next)
{
	(void)ctx;
	(void)seg;
	static uint64_t last = LOG_START + 16 * SEG;

	if (last == LOG_START + SEG) {	/* segment 0 is where we started */
		*next = 0;
		return 0;
	}
	last -= SEG;
	*next = last;
	return 0;
}

static void test_store_buffers_stay_inside_segments_and_chain(void **state)
{
	struct env *e;
	uint8_t rec[20000];
	uint64_t pos = 0, addr, seq, seg_end;
	unsigned segs_seen = 1;
	int err = 0;

	(void)state;
	g_seg_size = SEG;
	g_alloc_seg = alloc_backwards;
	e = env_new(16 * SEG, 4, 256 << 10, BR_WRITE_TAIL);
	g_seg_size = 0;
	g_alloc_seg = NULL;
	/* odd-sized buffers (syncs every few records) so spans never tile
	 * a segment exactly; fill until the log is full */
	for (int i = 0; !err; i++) {
		memset(rec, i, sizeof(rec));
		err = br_store_append(e->s, rec, (uint32_t)(1000 + i % 7 * 2500),
				      &pos);
		if (!err && i % 5 == 4)
			err = br_store_sync(e->s, pos);
	}
	assert_int_equal(err, -ENOSPC);
	assert_int_equal(br_store_error(e->s), 0);	/* not latched */
	assert_int_equal(br_store_close(e->s), 0);
	e->s = NULL;

	/* Walk the log with the reader's rule from format.h. */
	addr = LOG_START;
	seg_end = LOG_START + SEG;
	for (seq = 1;; seq++) {
		struct br_buf_header h;
		uint64_t next_seg;

		assert_int_equal(pread(e->fd, &h, sizeof(h), (off_t)addr),
				 sizeof(h));
		assert_int_equal(br_le64_get(h.seq), seq);
		assert_int_equal(e->addr_of[seq], addr);
		assert_true(addr + br_le32_get(h.span) <= seg_end);
		next_seg = br_le64_get(h.next_seg);
		addr += br_le32_get(h.span);
		if (!e->addr_of[seq + 1])
			break;
		if (e->addr_of[seq + 1] != addr) {
			/* it moved on: to next_seg, at its start */
			assert_int_equal(e->addr_of[seq + 1], next_seg);
			addr = next_seg;
			seg_end = addr + SEG;
			segs_seen++;
		}
	}
	/* 16 segments minus nothing: the backwards allocator gave 15 more */
	assert_int_equal(segs_seen, 16);
	env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_append_sync_reads_back_from_disk),
		cmocka_unit_test(test_store_8_threads_200k_records_land_once_intact),
		cmocka_unit_test(test_store_serial_mode_writes_in_log_order),
		cmocka_unit_test(test_store_group_commit_shares_device_flushes),
		cmocka_unit_test(test_store_transient_and_short_writes_are_retried),
		cmocka_unit_test(test_store_persistent_failure_latches_eio),
		cmocka_unit_test(test_store_full_log_returns_enospc),
		cmocka_unit_test(test_store_buffers_stay_inside_segments_and_chain),
	};

	if (getenv("BR_TEST_FILTER"))	/* e.g. to loop one test */
		cmocka_set_test_filter(getenv("BR_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
