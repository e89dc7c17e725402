/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/map: extents against a byte-array model, directory cookies, xattrs,
 * and the pending -> durable switch (also from another thread, under the
 * caller's lock, as core/fsys uses it).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "map.h"

/* ---- a byte-array model of one file's extent map ---- */

#define MODEL_SIZE (5 * BR_CHUNK_SIZE + 12345)

/* Identity of one mapped byte: 0 is a hole. */
static uint64_t ident(const struct br_loc *l)
{
	if (l->kind == BR_EXT_DURABLE)
		return 1ull << 62 | l->v;
	return 1ull << 63 | (uint64_t)l->idx << 56 | (l->v & 0xffffff) << 32 |
	       l->boff;
}

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic for a given seed */
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ull;
}

struct model {
	uint64_t *b;
	struct br_extmap m;
};

static void model_insert(struct model *md, uint64_t off, uint64_t len,
			 struct br_loc l)
{
	assert_int_equal(br_extmap_insert(&md->m, off, len, &l), 0);
	for (uint64_t i = 0; i < len; i++) {
		struct br_loc x = l;

		if (x.kind == BR_EXT_DURABLE)
			x.v += i;
		else
			x.boff += (uint32_t)i;
		md->b[off + i] = ident(&x);
	}
}

static void model_punch(struct model *md, uint64_t off, uint64_t len)
{
	assert_int_equal(br_extmap_punch(&md->m, off, len), 0);
	for (uint64_t i = off; i < MODEL_SIZE && (len == UINT64_MAX || i < off + len); i++)
		md->b[i] = 0;
}

struct check {
	struct model *md;
	uint64_t next;
};

static int check_piece(void *ctx, uint64_t off, uint64_t len,
		       const struct br_extent *e, uint64_t delta)
{
	struct check *ck = ctx;

	assert_int_equal(off, ck->next);
	assert_true(len > 0);
	for (uint64_t i = 0; i < len; i++) {
		uint64_t want = ck->md->b[off + i];

		if (!e) {
			assert_int_equal(want, 0);
		} else {
			struct br_loc l = br_extent_loc(e, delta + i);

			assert_int_equal(want, ident(&l));
		}
	}
	ck->next = off + len;
	return 0;
}

static void model_verify(struct model *md)
{
	struct check ck = { md, 0 };
	uint64_t bytes = 0, next = 0, r, want;
	struct br_chunk *c, *tmp;

	assert_int_equal(br_extmap_walk(&md->m, 0, MODEL_SIZE, check_piece, &ck), 0);
	assert_int_equal(ck.next, MODEL_SIZE);
	for (uint64_t i = 0; i < MODEL_SIZE; i++)
		bytes += md->b[i] != 0;
	assert_int_equal(md->m.bytes, bytes);
	/* structure: sorted, no overlap, inside the chunk, no empty chunk */
	HASH_ITER(hh, md->m.chunks, c, tmp) {
		assert_true(c->n > 0);
		for (uint32_t i = 0; i < c->n; i++) {
			const struct br_extent *e = &c->ext[i];

			assert_true(e->len > 0);
			assert_int_equal(e->off >> BR_CHUNK_SHIFT, c->key);
			assert_int_equal((e->off + e->len - 1) >> BR_CHUNK_SHIFT, c->key);
			if (i)
				assert_true(c->ext[i - 1].off + c->ext[i - 1].len <= e->off);
		}
		next += c->n;
	}
	assert_int_equal(md->m.next, next);
	/* SEEK_DATA / SEEK_HOLE at a few random points */
	for (int k = 0; k < 20; k++) {
		uint64_t off = rnd() % MODEL_SIZE;
		int err;

		want = off;
		while (want < MODEL_SIZE && md->b[want] == 0)
			want++;
		err = br_extmap_seek(&md->m, off, MODEL_SIZE, true, &r);
		if (want == MODEL_SIZE) {
			assert_int_equal(err, -ENXIO);
		} else {
			assert_int_equal(err, 0);
			assert_int_equal(r, want);
		}
		want = off;
		while (want < MODEL_SIZE && md->b[want] != 0)
			want++;
		assert_int_equal(br_extmap_seek(&md->m, off, MODEL_SIZE, false, &r), 0);
		assert_int_equal(r, want);
	}
}

static struct br_loc random_loc(void)
{
	struct br_loc l = { 0 };

	if (rnd() % 3) {
		l.kind = BR_EXT_DURABLE;
		l.v = (rnd() % (1ull << 36)) + 4096;
	} else {
		l.kind = BR_EXT_PENDING;
		l.idx = (uint8_t)(rnd() % 4);
		l.v = 1 + rnd() % 8;
		l.boff = (uint32_t)(32 + rnd() % (1u << 20));
	}
	return l;
}

static uint64_t random_len(void)
{
	switch (rnd() % 4) {
	case 0: return 1 + rnd() % 16;
	case 1: return 1 + rnd() % 5000;
	case 2: return 1 + rnd() % (BR_CHUNK_SIZE / 2);
	default: return 1 + rnd() % (2 * BR_CHUNK_SIZE + 7);
	}
}

static void test_extents_match_a_byte_model_under_random_operations(void **state)
{
	struct model md = { 0 };

	(void)state;
	rnd_state = 0x9e3779b97f4a7c15ull;
	md.b = calloc(MODEL_SIZE, sizeof(*md.b));
	assert_non_null(md.b);
	for (int step = 0; step < 3000; step++) {
		uint64_t op = rnd() % 10, off = rnd() % MODEL_SIZE;
		uint64_t len = random_len();

		if (off + len > MODEL_SIZE)
			len = MODEL_SIZE - off;
		if (op < 6) {
			model_insert(&md, off, len, random_loc());
		} else if (op < 8) {
			model_punch(&md, off, len);
		} else if (op == 8) {
			if (rnd() % 4 == 0)
				model_punch(&md, off, UINT64_MAX);
		} else {
			/* complete one (idx, seq) buffer in every chunk */
			unsigned idx = (unsigned)(rnd() % 4);
			uint64_t seq = 1 + rnd() % 8, addr = 1ull << 40;
			struct br_chunk *c, *tmp;

			HASH_ITER(hh, md.m.chunks, c, tmp)
				br_extmap_complete(&md.m, c->key, idx, seq, addr);
			for (uint64_t i = 0; i < MODEL_SIZE; i++) {
				uint64_t x = md.b[i];

				if ((x >> 63) && ((x >> 56) & 0x7f) == idx &&
				    ((x >> 32) & 0xffffff) == seq)
					md.b[i] = 1ull << 62 | (addr + (x & 0xffffffff));
			}
		}
		if (step % 100 == 99)
			model_verify(&md);
	}
	model_verify(&md);
	br_extmap_free(&md.m);
	assert_null(md.m.chunks);
	free(md.b);
}

static void test_log_contiguous_writes_merge_into_one_extent(void **state)
{
	struct br_extmap m = { 0 };
	struct br_loc l = { .kind = BR_EXT_DURABLE, .v = 8192 };

	(void)state;
	for (int i = 0; i < 64; i++) {
		assert_int_equal(br_extmap_insert(&m, (uint64_t)i * 4096, 4096, &l), 0);
		l.v += 4096;
	}
	assert_int_equal(m.next, 1);
	assert_int_equal(m.bytes, 64 * 4096);
	/* overwrite the middle elsewhere: split into three */
	l.v = 1 << 30;
	assert_int_equal(br_extmap_insert(&m, 100, 50, &l), 0);
	assert_int_equal(m.next, 3);
	/* punch a hole across all three */
	assert_int_equal(br_extmap_punch(&m, 90, 100), 0);
	assert_int_equal(m.next, 2);
	assert_int_equal(m.bytes, 64 * 4096 - 100);
	br_extmap_free(&m);
}

static void test_extents_never_cross_chunks_and_truncate_frees_them(void **state)
{
	struct br_extmap m = { 0 };
	struct br_loc l = { .kind = BR_EXT_DURABLE, .v = 1 << 20 };
	uint64_t big = 5ull << 30;	/* past 4 GiB */

	(void)state;
	assert_int_equal(br_extmap_insert(&m, big - 100, 3 * BR_CHUNK_SIZE, &l), 0);
	assert_int_equal(HASH_COUNT(m.chunks), 4);
	assert_int_equal(m.bytes, 3 * BR_CHUNK_SIZE);
	assert_int_equal(br_extmap_punch(&m, big, UINT64_MAX), 0);
	assert_int_equal(m.bytes, 100);
	assert_int_equal(HASH_COUNT(m.chunks), 1);
	uint64_t r;

	assert_int_equal(br_extmap_seek(&m, 0, big, true, &r), 0);
	assert_int_equal(r, big - 100);
	assert_int_equal(br_extmap_seek(&m, big - 50, big, false, &r), 0);
	assert_int_equal(r, big);
	assert_int_equal(br_extmap_seek(&m, big, big, false, &r), -ENXIO);
	br_extmap_free(&m);
}

static void test_pending_extents_switch_to_durable_addresses(void **state)
{
	struct br_extmap m = { 0 };
	struct br_loc p = { .kind = BR_EXT_PENDING, .idx = 2, .v = 7, .boff = 56 };
	struct br_loc q = { .kind = BR_EXT_PENDING, .idx = 3, .v = 8, .boff = 56 };
	struct br_chunk *c;
	uint64_t key = 0;

	(void)state;
	assert_int_equal(br_extmap_insert(&m, 0, 1000, &p), 0);
	assert_int_equal(br_extmap_insert(&m, 1000, 1000, &q), 0);
	/* overwrite the middle of the first: both halves stay pending */
	assert_int_equal(br_extmap_insert(&m, 400, 100, &q), 0);
	assert_int_equal(br_extmap_complete(&m, 0, 2, 6, 4096), 0); /* wrong seq */
	assert_int_equal(br_extmap_complete(&m, 0, 2, 7, 4096), 2);
	HASH_FIND(hh, m.chunks, &key, sizeof(key), c);
	assert_non_null(c);
	assert_int_equal(c->ext[0].kind, BR_EXT_DURABLE);
	assert_int_equal(c->ext[0].v, 4096 + 56);
	assert_int_equal(c->ext[2].kind, BR_EXT_DURABLE);
	assert_int_equal(c->ext[2].off, 500);
	assert_int_equal(c->ext[2].v, 4096 + 56 + 500);
	assert_int_equal(c->ext[1].kind, BR_EXT_PENDING);
	assert_int_equal(br_extmap_complete(&m, 0, 3, 8, 1 << 20), 2);
	br_extmap_free(&m);
}

/* ---- directories ---- */

static void test_dir_cookies_stay_stable_while_entries_are_removed(void **state)
{
	struct br_dir d;
	char name[32];
	enum { N = 2000 };
	static int seen[N], removed[N];
	uint64_t after = 0, last = 0;
	struct br_dirent *de;

	(void)state;
	br_dir_init(&d);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(br_dir_add(&d, name, strlen(name), 100 + i,
					    S_IFREG, NULL), 0);
	}
	assert_int_equal(br_dir_add(&d, "f7", 2, 1, S_IFREG, NULL), -EEXIST);
	rnd_state = 12345;
	/* read one entry at a time, removing random (also unread) entries
	 * and adding new ones between the calls */
	while ((de = br_dir_next(&d, after))) {
		int i = (int)(de->ino - 100);

		assert_true(de->cookie > last);
		last = de->cookie;
		after = de->cookie;
		if (i >= 0 && i < N) {
			assert_false(removed[i]);
			seen[i]++;
		}
		for (int k = 0; k < 2; k++) {
			int j = (int)(rnd() % N);

			snprintf(name, sizeof(name), "f%d", j);
			struct br_dirent *x = br_dir_find(&d, name, strlen(name));

			if (x) {
				br_dir_remove(&d, x);
				removed[j] = 1;
			}
		}
		snprintf(name, sizeof(name), "new%llu", (unsigned long long)after);
		assert_int_equal(br_dir_add(&d, name, strlen(name), 1, S_IFDIR, NULL), 0);
		if (after > 20 * N)
			break;
	}
	for (int i = 0; i < N; i++) {
		if (!removed[i])
			assert_int_equal(seen[i], 1);
		else
			assert_true(seen[i] <= 1);
	}
	assert_int_equal(HASH_COUNT(d.by_name), d.live);
	br_dir_free(&d);
}

static void test_dir_rejects_long_names_and_finds_by_exact_bytes(void **state)
{
	struct br_dir d;
	char name[BR_NAME_MAX + 2];

	(void)state;
	br_dir_init(&d);
	memset(name, 'a', sizeof(name));
	assert_int_equal(br_dir_add(&d, name, BR_NAME_MAX + 1, 5, S_IFREG, NULL), -EINVAL);
	assert_int_equal(br_dir_add(&d, name, BR_NAME_MAX, 5, S_IFREG, NULL), 0);
	assert_non_null(br_dir_find(&d, name, BR_NAME_MAX));
	assert_null(br_dir_find(&d, name, BR_NAME_MAX - 1));
	assert_int_equal(br_dir_add(&d, "ab", 2, 6, S_IFREG, NULL), 0);
	assert_null(br_dir_find(&d, "abc", 2 + 1));
	assert_non_null(br_dir_find(&d, "abc", 2));
	br_dir_free(&d);
}

static void test_xattrs_follow_create_replace_semantics(void **state)
{
	struct br_xattr *h = NULL;
	char buf[64];

	(void)state;
	assert_int_equal(br_xattr_set(&h, "user.a", "1", 1, BR_XATTR_REPLACE), -ENODATA);
	assert_int_equal(br_xattr_set(&h, "user.a", "1", 1, BR_XATTR_CREATE), 0);
	assert_int_equal(br_xattr_set(&h, "user.a", "2", 1, BR_XATTR_CREATE), -EEXIST);
	assert_int_equal(br_xattr_set(&h, "user.a", "22", 2, BR_XATTR_REPLACE), 0);
	assert_int_equal(br_xattr_set(&h, "user.bb", "", 0, 0), 0);
	assert_int_equal(br_xattr_list(&h, NULL, 0), 7 + 8);
	assert_int_equal(br_xattr_list(&h, buf, 10), -ERANGE);
	assert_int_equal(br_xattr_list(&h, buf, sizeof(buf)), 15);
	assert_int_equal(br_xattr_find(&h, "user.a")->size, 2);
	assert_int_equal(br_xattr_remove(&h, "user.a"), 0);
	assert_int_equal(br_xattr_remove(&h, "user.a"), -ENODATA);
	br_xattr_free_all(&h);
	assert_null(h);
}

static void test_inode_numbers_are_never_reused(void **state)
{
	struct br_map m;
	struct br_inode *a, *b;

	(void)state;
	br_map_init(&m);
	assert_int_equal(br_map_inode_new(&m, 10, S_IFREG | 0644, &a), 0);
	assert_int_equal(br_map_inode_new(&m, 10, S_IFREG, &b), -EEXIST);
	assert_int_equal(m.next_ino, 11);
	br_map_inode_free(&m, a);
	assert_null(br_map_inode_find(&m, 10));
	assert_int_equal(m.next_ino, 11);
	br_map_free(&m, NULL);
}

/* ---- concurrent: writer + completion thread + readers under one rwlock ---- */

struct conc {
	pthread_rwlock_t lock;
	struct br_extmap m;
	int stop;
	uint64_t seq_done;	/* under lock */
};

#define CONC_SEQS 400

static void *conc_completer(void *arg)
{
	struct conc *c = arg;

	for (uint64_t seq = 1; seq <= CONC_SEQS; seq++) {
		pthread_rwlock_wrlock(&c->lock);
		for (uint64_t key = 0; key < 4; key++)
			br_extmap_complete(&c->m, key, (unsigned)(seq % 4), seq,
					   seq << 24);
		c->seq_done = seq;
		pthread_rwlock_unlock(&c->lock);
	}
	return NULL;
}

static int conc_piece(void *ctx, uint64_t off, uint64_t len,
		      const struct br_extent *e, uint64_t delta)
{
	uint64_t *done = ctx;

	(void)off;
	(void)len;
	(void)delta;
	if (e && e->kind == BR_EXT_PENDING && e->v <= *done)
		return -1;	/* a completed buffer still looks pending */
	return 0;
}

static void *conc_reader(void *arg)
{
	struct conc *c = arg;
	int stop = 0;

	while (!stop) {
		pthread_rwlock_rdlock(&c->lock);
		uint64_t done = c->seq_done;

		assert_int_equal(br_extmap_walk(&c->m, 0, 4 * BR_CHUNK_SIZE,
						conc_piece, &done), 0);
		stop = c->stop;
		pthread_rwlock_unlock(&c->lock);
	}
	return NULL;
}

static void test_completion_thread_switches_while_readers_walk(void **state)
{
	struct conc c = { .stop = 0 };
	pthread_t comp, rd[2];

	(void)state;
	pthread_rwlock_init(&c.lock, NULL);
	/* writes only ever name buffers the completer has not reached, the
	 * way the ring only hands out open buffers */
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&rd[i], NULL, conc_reader, &c), 0);
	pthread_rwlock_wrlock(&c.lock);
	for (uint64_t seq = 1; seq <= CONC_SEQS; seq++) {
		struct br_loc l = { .kind = BR_EXT_PENDING,
				    .idx = (uint8_t)(seq % 4), .v = seq,
				    .boff = 32 };

		assert_int_equal(br_extmap_insert(&c.m, (seq * 7919) % (3 * BR_CHUNK_SIZE),
						  BR_CHUNK_SIZE / 3, &l), 0);
	}
	pthread_rwlock_unlock(&c.lock);
	assert_int_equal(pthread_create(&comp, NULL, conc_completer, &c), 0);
	pthread_join(comp, NULL);
	pthread_rwlock_wrlock(&c.lock);
	c.stop = 1;
	pthread_rwlock_unlock(&c.lock);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);
	struct br_chunk *ch, *tmp;

	HASH_ITER(hh, c.m.chunks, ch, tmp) {
		for (uint32_t i = 0; i < ch->n; i++)
			assert_int_equal(ch->ext[i].kind, BR_EXT_DURABLE);
	}
	br_extmap_free(&c.m);
	pthread_rwlock_destroy(&c.lock);
}

/* Location of file byte off (kind 0: a hole). */
static int loc_piece(void *ctx, uint64_t off, uint64_t len,
		     const struct br_extent *e, uint64_t delta)
{
	struct br_loc *l = ctx;

	(void)off;
	(void)len;
	if (e)
		*l = br_extent_loc(e, delta);
	return 1;
}

static struct br_loc loc_at(const struct br_extmap *m, uint64_t off)
{
	struct br_loc l = { 0 };

	br_extmap_walk(m, off, 1, loc_piece, &l);
	return l;
}

/*
 * The cleaner's RELOC (format.h): across a chunk boundary, only the bytes
 * still durable at exactly their old address move to the copy; a piece
 * overwritten (durable elsewhere), still pending, or punched stays; the
 * count of what is still at the old address is what moves.
 */
static void test_relocate_moves_only_bytes_still_at_their_old_address(void **state)
{
	const uint64_t off = BR_CHUNK_SIZE - 8192, len = 32768;
	const uint64_t old = 10ull << 20, nw = 50ull << 20;
	struct br_extmap m = { 0 };
	struct br_loc d = { .kind = BR_EXT_DURABLE, .v = old };
	struct br_loc other = { .kind = BR_EXT_DURABLE, .v = 90ull << 20 };
	struct br_loc pend = { .kind = BR_EXT_PENDING, .idx = 1, .v = 7 };
	uint64_t moved = 0;
	struct br_loc l;

	(void)state;
	assert_int_equal(br_extmap_insert(&m, off, len, &d), 0);
	/* [off+4096, +4096) overwritten, [off+12288, +4096) pending,
	 * [off+20480, +4096) punched */
	assert_int_equal(br_extmap_insert(&m, off + 4096, 4096, &other), 0);
	assert_int_equal(br_extmap_insert(&m, off + 12288, 4096, &pend), 0);
	assert_int_equal(br_extmap_punch(&m, off + 20480, 4096), 0);
	assert_int_equal(br_extmap_at(&m, off, len, old), len - 3 * 4096);
	/* a copy of other bytes (wrong old address) moves nothing */
	assert_int_equal(br_extmap_relocate(&m, off, len, old + 4096, nw,
					    &moved), 0);
	assert_int_equal(moved, 0);
	assert_int_equal(br_extmap_relocate(&m, off, len, old, nw, &moved), 0);
	assert_int_equal(moved, len - 3 * 4096);
	assert_int_equal(br_extmap_at(&m, off, len, old), 0);
	assert_int_equal(br_extmap_at(&m, off, len, nw), len - 3 * 4096);
	l = loc_at(&m, off);
	assert_int_equal(l.kind, BR_EXT_DURABLE);
	assert_int_equal(l.v, nw);
	l = loc_at(&m, off + 4096);
	assert_int_equal(l.v, other.v);
	l = loc_at(&m, off + 12288);
	assert_int_equal(l.kind, BR_EXT_PENDING);
	assert_int_equal(loc_at(&m, off + 20480).kind, 0);
	l = loc_at(&m, off + 9000);	/* past the chunk boundary */
	assert_int_equal(l.v, nw + 9000);
	l = loc_at(&m, off + len - 1);
	assert_int_equal(l.v, nw + len - 1);
	assert_int_equal(m.bytes, len - 4096);
	/* again: idempotent, as replay of the same record must be */
	moved = 0;
	assert_int_equal(br_extmap_relocate(&m, off, len, old, nw, &moved), 0);
	assert_int_equal(moved, 0);
	br_extmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extents_match_a_byte_model_under_random_operations),
		cmocka_unit_test(test_log_contiguous_writes_merge_into_one_extent),
		cmocka_unit_test(test_relocate_moves_only_bytes_still_at_their_old_address),
		cmocka_unit_test(test_extents_never_cross_chunks_and_truncate_frees_them),
		cmocka_unit_test(test_pending_extents_switch_to_durable_addresses),
		cmocka_unit_test(test_dir_cookies_stay_stable_while_entries_are_removed),
		cmocka_unit_test(test_dir_rejects_long_names_and_finds_by_exact_bytes),
		cmocka_unit_test(test_xattrs_follow_create_replace_semantics),
		cmocka_unit_test(test_inode_numbers_are_never_reused),
		cmocka_unit_test(test_completion_thread_switches_while_readers_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
