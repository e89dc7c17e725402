/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The in-memory map; see map.h for the data structures and their rules.
 *
 * uthash is built with HASH_NONFATAL_OOM: a failed table expansion leaves
 * the element out, sets map_oom and we return -ENOMEM instead of exiting.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static __thread int map_oom;
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) (map_oom = 1)

#include "map.h"
#include "segment.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* Extents                                                              */
/* ------------------------------------------------------------------ */

static void ext_advance(struct br_extent *e, uint64_t delta)
{
	e->off += delta;
	e->len -= (uint32_t)delta;
	if (e->kind == BR_EXT_DURABLE)
		e->v += delta;
	else
		e->boff += (uint32_t)delta;
}

struct br_loc br_extent_loc(const struct br_extent *e, uint64_t delta)
{
	struct br_loc l = { .kind = e->kind, .idx = e->idx, .boff = e->boff,
			    .v = e->v };

	if (e->kind == BR_EXT_DURABLE)
		l.v += delta;
	else
		l.boff += (uint32_t)delta;
	return l;
}

/* b continues a both in the file and in its location. */
static bool ext_contiguous(const struct br_extent *a, const struct br_extent *b)
{
	if (a->off + a->len != b->off || a->kind != b->kind)
		return false;
	if (a->kind == BR_EXT_DURABLE)
		return a->v + a->len == b->v;
	return a->v == b->v && a->idx == b->idx && a->boff + a->len == b->boff;
}

/* The map gained (d > 0) or lost extents; the table's total feeds the
 * checkpoint size guess (br_ckpt_guess). */
static void ext_count(struct br_extmap *m, int64_t d)
{
	m->next += (uint64_t)d;
	if (m->segs)
		atomic_fetch_add_explicit(&m->segs->extents, (uint64_t)d,
					  memory_order_relaxed);
}

/* Segment accounting: durable bytes entering (+) or leaving (-) the map. */
static void ext_account(const struct br_extmap *m, const struct br_extent *e,
			int sign)
{
	if (!m->segs || e->kind != BR_EXT_DURABLE)
		return;
	if (sign > 0)
		br_seg_add(m->segs, e->v, e->len);
	else
		br_seg_sub(m->segs, e->v, e->len);
}

/* Index of the first extent that ends after off. */
static uint32_t chunk_first(const struct br_chunk *c, uint64_t off)
{
	uint32_t lo = 0, hi = c->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct br_extent *e = &c->ext[mid];

		if (e->off + e->len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void chunk_drop(struct br_extmap *m, struct br_chunk *c)
{
	HASH_DEL(m->chunks, c);
	free(c->ext);
	free(c);
}

/*
 * Replace [off, end) inside chunk c (the range lies within the chunk) by
 * nw (NULL: by nothing).  All allocation happens before any change.
 */
static int chunk_replace(struct br_extmap *m, struct br_chunk *c, uint64_t off,
			 uint64_t end, const struct br_extent *nw)
{
	uint32_t first = chunk_first(c, off), last = first, i, np = 0, k;
	struct br_extent piece[3];
	uint64_t removed = 0, added = 0;
	int at_new = -1;

	while (last < c->n && c->ext[last].off < end)
		last++;
	if (first < last && c->ext[first].off < off) {
		piece[np] = c->ext[first];
		piece[np].len = (uint32_t)(off - piece[np].off);
		np++;
	}
	if (nw) {
		at_new = (int)np;
		piece[np++] = *nw;
	}
	if (first < last) {
		const struct br_extent *b = &c->ext[last - 1];

		if (b->off + b->len > end) {
			piece[np] = *b;
			ext_advance(&piece[np], end - b->off);
			np++;
		}
	}
	uint32_t n = c->n - (last - first) + np;

	if (n > c->cap) {
		uint32_t cap = c->cap ? c->cap * 2 : 4;
		struct br_extent *ne;

		while (cap < n)
			cap *= 2;
		ne = realloc(c->ext, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		c->ext = ne;
		c->cap = cap;
	}
	/* Every replaced extent leaves, every piece (kept remainders
	 * included) enters: the net change per segment is exact. */
	for (i = first; i < last; i++) {
		removed += c->ext[i].len;
		ext_account(m, &c->ext[i], -1);
	}
	for (i = 0; i < np; i++) {
		added += piece[i].len;
		ext_account(m, &piece[i], 1);
	}
	memmove(&c->ext[first + np], &c->ext[last],
		(c->n - last) * sizeof(*c->ext));
	memcpy(&c->ext[first], piece, np * sizeof(*piece));
	c->n = n;
	ext_count(m, (int64_t)np - (int64_t)(last - first));
	m->bytes = m->bytes - removed + added;

	if (at_new >= 0) {
		k = first + (uint32_t)at_new;
		if (k + 1 < c->n && ext_contiguous(&c->ext[k], &c->ext[k + 1])) {
			c->ext[k].len += c->ext[k + 1].len;
			memmove(&c->ext[k + 1], &c->ext[k + 2],
				(c->n - k - 2) * sizeof(*c->ext));
			c->n--;
			ext_count(m, -1);
		}
		if (k > 0 && ext_contiguous(&c->ext[k - 1], &c->ext[k])) {
			c->ext[k - 1].len += c->ext[k].len;
			memmove(&c->ext[k], &c->ext[k + 1],
				(c->n - k - 1) * sizeof(*c->ext));
			c->n--;
			ext_count(m, -1);
		}
	}
	if (c->n == 0)
		chunk_drop(m, c);
	else if (c->cap > 16 && c->n < c->cap / 4) {
		struct br_extent *ne = realloc(c->ext, c->cap / 2 * sizeof(*ne));

		if (ne) {
			c->ext = ne;
			c->cap /= 2;
		}
	}
	return 0;
}

int br_extmap_insert(struct br_extmap *m, uint64_t off, uint64_t len,
		     const struct br_loc *loc)
{
	uint64_t end = off + len, pos = off;

	if (off > BR_MAX_FILE_SIZE || len > BR_MAX_FILE_SIZE - off)
		return -EFBIG;
	while (pos < end) {
		uint64_t key = pos >> BR_CHUNK_SHIFT;
		uint64_t cend = (key + 1) << BR_CHUNK_SHIFT;
		uint64_t pend = end < cend ? end : cend;
		struct br_chunk *c;
		struct br_extent e = {
			.off = pos, .len = (uint32_t)(pend - pos),
			.kind = loc->kind, .idx = loc->idx,
			.boff = loc->boff, .v = loc->v,
		};
		int err;

		if (loc->kind == BR_EXT_DURABLE)
			e.v += pos - off;
		else
			e.boff += (uint32_t)(pos - off);
		HASH_FIND(hh, m->chunks, &key, sizeof(key), c);
		if (!c) {
			c = calloc(1, sizeof(*c));
			if (!c)
				return -ENOMEM;
			c->key = key;
			map_oom = 0;
			HASH_ADD(hh, m->chunks, key, sizeof(c->key), c);
			if (map_oom) {
				free(c);
				return -ENOMEM;
			}
		}
		err = chunk_replace(m, c, pos, pend, &e);
		if (err) {
			if (c->n == 0)
				chunk_drop(m, c);
			return err;
		}
		pos = pend;
	}
	return 0;
}

static int punch_chunk(struct br_extmap *m, struct br_chunk *c, uint64_t off,
		       uint64_t end)
{
	uint64_t cstart = c->key << BR_CHUNK_SHIFT;
	uint64_t cend = cstart + BR_CHUNK_SIZE;

	if (off <= cstart && end >= cend) {
		for (uint32_t i = 0; i < c->n; i++) {
			m->bytes -= c->ext[i].len;
			ext_account(m, &c->ext[i], -1);
		}
		ext_count(m, -(int64_t)c->n);
		chunk_drop(m, c);
		return 0;
	}
	return chunk_replace(m, c, off > cstart ? off : cstart,
			     end < cend ? end : cend, NULL);
}

int br_extmap_punch(struct br_extmap *m, uint64_t off, uint64_t len)
{
	uint64_t end = len >= UINT64_MAX - off ? UINT64_MAX : off + len;
	uint64_t k0 = off >> BR_CHUNK_SHIFT, k1 = (end - 1) >> BR_CHUNK_SHIFT;
	struct br_chunk *c, *tmp;
	int err;

	if (len == 0 || !m->chunks)
		return 0;
	if (k1 - k0 >= HASH_COUNT(m->chunks)) {
		HASH_ITER(hh, m->chunks, c, tmp) {
			if (c->key < k0 || c->key > k1)
				continue;
			err = punch_chunk(m, c, off, end);
			if (err)
				return err;
		}
		return 0;
	}
	for (uint64_t key = k0; key <= k1; key++) {
		HASH_FIND(hh, m->chunks, &key, sizeof(key), c);
		if (c) {
			err = punch_chunk(m, c, off, end);
			if (err)
				return err;
		}
	}
	return 0;
}

int br_extmap_walk(const struct br_extmap *m, uint64_t off, uint64_t len,
		   br_extmap_fn fn, void *ctx)
{
	uint64_t end = off + len, pos = off, hole = off;
	int ret;

	while (pos < end) {
		uint64_t key = pos >> BR_CHUNK_SHIFT;
		uint64_t cend = (key + 1) << BR_CHUNK_SHIFT;
		uint64_t pend = end < cend ? end : cend;
		struct br_chunk *c;

		HASH_FIND(hh, m->chunks, &key, sizeof(key), c);
		if (c) {
			for (uint32_t i = chunk_first(c, pos); i < c->n; i++) {
				const struct br_extent *e = &c->ext[i];
				uint64_t s = e->off > pos ? e->off : pos;
				uint64_t t = e->off + e->len;

				if (s >= pend)
					break;
				if (t > pend)
					t = pend;
				if (s > hole) {
					ret = fn(ctx, hole, s - hole, NULL, 0);
					if (ret)
						return ret;
				}
				ret = fn(ctx, s, t - s, e, s - e->off);
				if (ret)
					return ret;
				hole = t;
			}
		}
		pos = pend;
	}
	if (end > hole)
		return fn(ctx, hole, end - hole, NULL, 0);
	return 0;
}

int br_extmap_seek(const struct br_extmap *m, uint64_t off, uint64_t size,
		   bool want_data, uint64_t *res)
{
	struct br_chunk *c, *tmp;
	uint64_t key, pos = off;

	if (off >= size)
		return -ENXIO;
	if (want_data) {
		uint64_t best = UINT64_MAX;

		key = off >> BR_CHUNK_SHIFT;
		HASH_FIND(hh, m->chunks, &key, sizeof(key), c);
		if (c) {
			uint32_t i = chunk_first(c, off);

			if (i < c->n)
				best = c->ext[i].off > off ? c->ext[i].off : off;
		}
		if (best == UINT64_MAX) {
			HASH_ITER(hh, m->chunks, c, tmp) {
				if (c->key > key && c->ext[0].off < best)
					best = c->ext[0].off;
			}
		}
		if (best >= size)
			return -ENXIO;
		*res = best;
		return 0;
	}
	for (;;) {
		uint32_t i;

		key = pos >> BR_CHUNK_SHIFT;
		HASH_FIND(hh, m->chunks, &key, sizeof(key), c);
		if (!c)
			break;
		i = chunk_first(c, pos);
		if (i >= c->n || c->ext[i].off > pos)
			break;
		pos = c->ext[i].off + c->ext[i].len;
		if (pos >= size)
			break;
	}
	*res = pos < size ? pos : size;
	return 0;
}

unsigned br_extmap_complete(struct br_extmap *m, uint64_t key, unsigned idx,
			    uint64_t seq, uint64_t addr)
{
	struct br_chunk *c;
	unsigned n = 0;

	HASH_FIND(hh, m->chunks, &key, sizeof(key), c);
	if (!c)
		return 0;
	for (uint32_t i = 0; i < c->n; i++) {
		struct br_extent *e = &c->ext[i];

		if (e->kind == BR_EXT_PENDING && e->idx == idx && e->v == seq) {
			e->kind = BR_EXT_DURABLE;
			e->v = addr + e->boff;
			e->boff = 0;
			e->idx = 0;
			ext_account(m, e, 1);
			n++;
		}
	}
	return n;
}

/* Pieces mapped DURABLE at exactly old + (piece offset - off): counted,
 * and the first one noted when `first` (the walk then stops there). */
struct at_ctx {
	uint64_t off, old;
	uint64_t bytes;
	uint64_t hit_off, hit_len;
	bool first;
};

static int at_piece(void *ctx, uint64_t off, uint64_t len,
		    const struct br_extent *e, uint64_t delta)
{
	struct at_ctx *a = ctx;
	struct br_loc l;

	if (!e)
		return 0;
	l = br_extent_loc(e, delta);
	if (l.kind != BR_EXT_DURABLE || l.v != a->old + (off - a->off))
		return 0;
	a->bytes += len;
	if (!a->first)
		return 0;
	a->hit_off = off;
	a->hit_len = len;
	return 1;
}

uint64_t br_extmap_at(const struct br_extmap *m, uint64_t off, uint64_t len,
		      uint64_t old)
{
	struct at_ctx a = { .off = off, .old = old };

	br_extmap_walk(m, off, len, at_piece, &a);
	return a.bytes;
}

int br_extmap_relocate(struct br_extmap *m, uint64_t off, uint64_t len,
		       uint64_t old, uint64_t new_addr, uint64_t *moved)
{
	uint64_t pos = off, end = off + len;

	/* One matching piece at a time: an insert changes the chunk the
	 * walk is in, so the walk restarts after each; pos only grows. */
	while (pos < end) {
		struct at_ctx a = { .off = off, .old = old, .first = true };
		struct br_loc loc = { .kind = BR_EXT_DURABLE };
		int err;

		if (!br_extmap_walk(m, pos, end - pos, at_piece, &a))
			break;
		loc.v = new_addr + (a.hit_off - off);
		err = br_extmap_insert(m, a.hit_off, a.hit_len, &loc);
		if (err)
			return err;
		if (moved)
			*moved += a.hit_len;
		pos = a.hit_off + a.hit_len;
	}
	return 0;
}

void br_extmap_free(struct br_extmap *m)
{
	struct br_chunk *c, *tmp;

	HASH_ITER(hh, m->chunks, c, tmp) {
		for (uint32_t i = 0; i < c->n; i++)
			ext_account(m, &c->ext[i], -1);
		chunk_drop(m, c);
	}
	m->bytes = 0;
	ext_count(m, -(int64_t)m->next);
}

/* ------------------------------------------------------------------ */
/* Directories                                                          */
/* ------------------------------------------------------------------ */

void br_dir_init(struct br_dir *d)
{
	memset(d, 0, sizeof(*d));
	d->next_cookie = BR_DIR_FIRST_COOKIE;
}

int br_dir_add(struct br_dir *d, const char *name, size_t len, uint64_t ino,
	       uint32_t type, struct br_dirent **out)
{
	struct br_dirent *de;

	if (len == 0 || len > BR_NAME_MAX)
		return -EINVAL;
	if (br_dir_find(d, name, len))
		return -EEXIST;
	if (br_grow(&d->order, &d->cap, d->n + 1, sizeof(*d->order), 8))
		return -ENOMEM;
	de = malloc(sizeof(*de) + len + 1);
	if (!de)
		return -ENOMEM;
	memcpy(de->name, name, len);
	de->name[len] = 0;
	de->namelen = (uint16_t)len;
	de->ino = ino;
	de->type = type & S_IFMT;
	de->cookie = d->next_cookie;
	de->slot = d->n;
	map_oom = 0;
	HASH_ADD_KEYPTR(hh, d->by_name, de->name, len, de);
	if (map_oom) {
		free(de);
		return -ENOMEM;
	}
	d->next_cookie++;
	d->order[d->n].cookie = de->cookie;
	d->order[d->n].d = de;
	d->n++;
	d->live++;
	if (out)
		*out = de;
	return 0;
}

struct br_dirent *br_dir_find(const struct br_dir *d, const char *name,
			      size_t len)
{
	struct br_dirent *de;

	HASH_FIND(hh, d->by_name, name, len, de);
	return de;
}

static void dir_compact(struct br_dir *d)
{
	size_t j = 0;

	for (size_t i = 0; i < d->n; i++) {
		if (!d->order[i].d)
			continue;
		d->order[j] = d->order[i];
		d->order[j].d->slot = j;
		j++;
	}
	d->n = j;
}

void br_dir_remove(struct br_dir *d, struct br_dirent *de)
{
	d->order[de->slot].d = NULL;
	d->live--;
	HASH_DEL(d->by_name, de);
	free(de);
	/* Amortised O(1): each compaction removes at least n/2 tombstones. */
	if (d->n >= 16 && d->live < d->n / 2)
		dir_compact(d);
	else if (d->live == 0)
		d->n = 0;
}

struct br_dirent *br_dir_next(const struct br_dir *d, uint64_t after)
{
	size_t lo = 0, hi = d->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->order[mid].cookie <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < d->n; lo++) {
		if (d->order[lo].d)
			return d->order[lo].d;
	}
	return NULL;
}

void br_dir_free(struct br_dir *d)
{
	struct br_dirent *de, *tmp;

	HASH_ITER(hh, d->by_name, de, tmp) {
		HASH_DEL(d->by_name, de);
		free(de);
	}
	free(d->order);
	br_dir_init(d);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                  */
/* ------------------------------------------------------------------ */

struct br_xattr *br_xattr_find(struct br_xattr *const *head, const char *name)
{
	struct br_xattr *x;

	HASH_FIND(hh, *head, name, strlen(name), x);
	return x;
}

int br_xattr_set(struct br_xattr **head, const char *name, const void *value,
		 uint32_t size, int flags)
{
	struct br_xattr *x = br_xattr_find(head, name);
	size_t len = strlen(name);
	void *v;

	if (x && (flags & BR_XATTR_CREATE))
		return -EEXIST;
	if (!x && (flags & BR_XATTR_REPLACE))
		return -ENODATA;
	v = malloc(size ? size : 1);
	if (!v)
		return -ENOMEM;
	memcpy(v, value, size);
	if (x) {
		free(x->value);
		x->value = v;
		x->size = size;
		return 0;
	}
	x = malloc(sizeof(*x) + len + 1);
	if (!x) {
		free(v);
		return -ENOMEM;
	}
	memcpy(x->name, name, len + 1);
	x->namelen = (uint16_t)len;
	x->value = v;
	x->size = size;
	map_oom = 0;
	HASH_ADD_KEYPTR(hh, *head, x->name, len, x);
	if (map_oom) {
		free(v);
		free(x);
		return -ENOMEM;
	}
	return 0;
}

int br_xattr_remove(struct br_xattr **head, const char *name)
{
	struct br_xattr *x = br_xattr_find(head, name);

	if (!x)
		return -ENODATA;
	HASH_DEL(*head, x);
	free(x->value);
	free(x);
	return 0;
}

ssize_t br_xattr_list(struct br_xattr *const *head, char *buf, size_t size)
{
	struct br_xattr *x, *tmp;
	size_t need = 0;

	HASH_ITER(hh, *head, x, tmp)
		need += x->namelen + 1u;
	if (size == 0)
		return (ssize_t)need;
	if (need > size)
		return -ERANGE;
	HASH_ITER(hh, *head, x, tmp) {
		memcpy(buf, x->name, x->namelen + 1u);
		buf += x->namelen + 1u;
	}
	return (ssize_t)need;
}

void br_xattr_free_all(struct br_xattr **head)
{
	struct br_xattr *x, *tmp;

	HASH_ITER(hh, *head, x, tmp) {
		HASH_DEL(*head, x);
		free(x->value);
		free(x);
	}
}

/* ------------------------------------------------------------------ */
/* Inodes                                                               */
/* ------------------------------------------------------------------ */

void br_map_init(struct br_map *m)
{
	memset(m, 0, sizeof(*m));
	m->next_ino = BR_ROOT_INO + 1;
}

int br_map_inode_new(struct br_map *m, uint64_t ino, uint32_t mode,
		     struct br_inode **out)
{
	struct br_inode *in;

	if (br_map_inode_find(m, ino))
		return -EEXIST;
	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->ino = ino;
	in->mode = mode;
	in->ext.segs = m->segs;
	br_dir_init(&in->dir);
	map_oom = 0;
	HASH_ADD(hh, m->inodes, ino, sizeof(in->ino), in);
	if (map_oom) {
		free(in);
		return -ENOMEM;
	}
	m->ninodes++;
	if (ino >= m->next_ino)
		m->next_ino = ino + 1;
	*out = in;
	return 0;
}

struct br_inode *br_map_inode_find(const struct br_map *m, uint64_t ino)
{
	struct br_inode *in;

	HASH_FIND(hh, m->inodes, &ino, sizeof(ino), in);
	return in;
}

void br_map_inode_free(struct br_map *m, struct br_inode *in)
{
	int64_t var = in->target ? br_var_len(strlen(in->target)) : 0;

	for (struct br_xattr *x = in->xattrs; x; x = x->hh.next)
		var += BR_VAR_XATTR(x->namelen, x->size);
	atomic_fetch_sub_explicit(&m->var_bytes, var, memory_order_relaxed);
	HASH_DEL(m->inodes, in);
	m->ninodes--;
	br_extmap_free(&in->ext);
	br_dir_free(&in->dir);
	br_xattr_free_all(&in->xattrs);
	free(in->target);
	free(in);
}

void br_map_free(struct br_map *m, void (*release)(void *priv))
{
	struct br_inode *in, *tmp;

	HASH_ITER(hh, m->inodes, in, tmp) {
		if (in->priv && release)
			release(in->priv);
		in->priv = NULL;
		br_map_inode_free(m, in);
	}
}
