/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checkpoints: serialise the map into the log, load it at mount, roll
 * forward from the cut.  The protocol is described in checkpoint.h, the
 * records and the blob in format.h.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cleaner.h"
#include "segment.h"
#include "crc32c.h"
#include "fsys_int.h"
#include "util.h"

#define CORRUPT BR_ERR_CORRUPT
#define PIECE_MAX (32u << 10)	/* blob bytes per CKPT_DATA record: small,
				 * so a checkpoint fits in the capped buffers
				 * of a segment entered with none free after
				 * it (core/store.c) */

/* A completed buffer, recorded while a checkpoint is being taken. */
struct watch_ent {
	uint64_t seq;
	uint64_t addr;
	uint32_t prev_nonce;
};

/* A pending extent in the blob: its address (8 bytes, little-endian)
 * is patched in once its buffer's address is known. */
struct patch {
	size_t at;		/* blob offset of the address */
	uint64_t seq;		/* buffer generation */
	uint32_t boff;		/* offset of the first byte in the buffer */
	uint32_t len;		/* the extent's bytes */
};

struct br_ckpt {
	pthread_mutex_t lock;		/* one checkpoint at a time; protects
					 * next_gen, next_which, stats */
	/* map_lock (write to change, on_complete holds it): */
	bool watching;
	bool watch_oom;
	uint64_t watch_max;		/* record buffers up to this seq */
	struct watch_ent *watch;
	size_t nwatch, capwatch;

	/* The snapshot being taken (checkpoint.h, step 3).  Changed under
	 * map_lock write, or under map_lock read by the checkpointing
	 * thread alone (no other reader touches it): */
	bool snap;			/* a snapshot is in progress */
	uint64_t snap_gen;		/* its generation */
	uint64_t snap_next_ino;		/* inodes from here on are younger */
	struct ser_ctx *sc;		/* where inodes are serialised */
	struct br_inode *cursor;	/* next inode for the walk */
	uint64_t snap_inodes;		/* inodes in the blob so far */
	uint64_t snap_cow;		/* of them, taken by a writer */
	uint64_t snap_cow_max_ns;	/* the longest such take */
	void (*snap_hook)(void *ctx, int at);	/* tests: br_ckpt_snap_hook */
	void *snap_hook_ctx;

	uint64_t next_gen;		/* generation (slot seq) of the next */
	unsigned next_which;		/* slot it goes to */
	struct br_ckpt_stats st;
	uint64_t *loaded_usage;		/* usage table loaded at mount */
	uint64_t loaded_nseg;
	uint64_t bytes_base;		/* store bytes after the last checkpoint */
	_Atomic uint64_t blob_bytes;	/* newest blob written or loaded, for
					 * br_ckpt_guess without the lock a
					 * checkpoint holds throughout */
	_Atomic uint64_t ext_cost;	/* blob bytes per extent (0: none
					 * measured yet), the same */
	_Atomic uint64_t base_ext;	/* the map's extents, inodes and
					 * var_bytes when that blob was cut
					 * or loaded */
	_Atomic uint64_t base_inodes;
	_Atomic int64_t base_var;
	uint64_t ld_ext_bytes, ld_ext_n; /* packed extents loaded (mount) */

	struct br_worker w;		/* the background thread */
	uint64_t every_bytes;		/* 0: the default (br_ckpt_every_bytes) */
	uint32_t every_secs;		/* 0: the default (ckpt_thread) */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int br_ckpt_init(struct br_fs *fs)
{
	struct br_ckpt *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	br_worker_init(&c->w);
	fs->ckpt = c;
	return 0;
}

void br_ckpt_free(struct br_fs *fs)
{
	struct br_ckpt *c = fs->ckpt;

	if (!c)
		return;
	br_worker_destroy(&c->w);
	pthread_mutex_destroy(&c->lock);
	free(c->watch);
	free(c->loaded_usage);
	free(c);
	fs->ckpt = NULL;
}

void br_ckpt_on_complete(struct br_fs *fs, const struct br_store_done *d)
{
	struct br_ckpt *c = fs->ckpt;
	const struct br_buf_header *bh = (const void *)d->data;

	if (!c || !c->watching || d->err || d->seq > c->watch_max)
		return;
	if (br_grow(&c->watch, &c->capwatch, c->nwatch + 1,
		    sizeof(*c->watch), 64)) {
		c->watch_oom = true;
		return;
	}
	c->watch[c->nwatch++] = (struct watch_ent){
		.seq = d->seq, .addr = d->addr,
		.prev_nonce = br_le32_get(bh->prev_nonce),
	};
}

static const struct watch_ent *watch_find(const struct br_ckpt *c, uint64_t seq)
{
	for (size_t i = 0; i < c->nwatch; i++)
		if (c->watch[i].seq == seq)
			return &c->watch[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Serialising                                                          */
/* ------------------------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	struct patch *pv;
	size_t np, pcap;
	int err;
};

/* The blob grows inside a batch of the walk or a copy-on-write, with
 * writers waiting: it lives in an anonymous mapping that mremap moves
 * without copying (realloc copied the whole blob, ~10 ms at 32 MiB). */
static void *wb_take(struct wbuf *w, size_t len)
{
	size_t padded = (len + 7) & ~(size_t)7;
	void *r;

	if (w->err)
		return NULL;
	if (w->n + padded > w->cap) {
		size_t cap = w->cap ? w->cap : 1u << 20;
		void *p;

		while (cap < w->n + padded)
			cap *= 2;
		p = w->p ? mremap(w->p, w->cap, cap, MREMAP_MAYMOVE)
			 : mmap(NULL, cap, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			w->err = -ENOMEM;
			return NULL;
		}
		w->p = p;
		w->cap = cap;
	}
	r = w->p + w->n;
	memset((uint8_t *)r + len, 0, padded - len);
	w->n += padded;
	return r;
}

/* Give back what a take of `len` bytes at blob offset `at` did not use:
 * the blob ends `used` bytes after at, padded to 8 with zeros. */
static void wb_trim(struct wbuf *w, size_t at, size_t used)
{
	size_t padded = (used + 7) & ~(size_t)7;

	memset(w->p + at + used, 0, padded - used);
	w->n = at + padded;
}

static void wb_free(struct wbuf *w)
{
	if (w->p)
		munmap(w->p, w->cap);
	free(w->pv);
}

static void wb_bytes(struct wbuf *w, const void *src, size_t len)
{
	void *d = wb_take(w, len);

	if (d)
		memcpy(d, src, len);
}

static void usage_add(uint64_t *usage, uint64_t nseg, uint64_t seg_size,
		      uint64_t addr, uint64_t len)
{
	while (len) {
		uint64_t seg = addr / seg_size;
		uint64_t n = (seg + 1) * seg_size - addr;

		if (n > len)
			n = len;
		if (seg < nseg)
			usage[seg] += n;
		addr += n;
		len -= n;
	}
}

struct ser_ctx {
	struct wbuf *w;
	uint64_t *usage;
	uint64_t nseg, seg_size;
	uint64_t data_bytes;
	uint64_t ext_bytes, nextents;	/* packed extents: bytes, count */
	unsigned ver;			/* blob version being written */
};

unsigned br_ckpt_write_version = BR_CKPT_VERSION;

/* Pending extent e's address goes at blob offset `at` once its buffer
 * has landed (step 5).  0 or -ENOMEM (also latched in w->err). */
static int patch_add(struct wbuf *w, size_t at, const struct br_extent *e)
{
	if (br_grow(&w->pv, &w->pcap, w->np + 1, sizeof(*w->pv), 256)) {
		w->err = -ENOMEM;
		return w->err;
	}
	w->pv[w->np++] = (struct patch){
		.at = at, .seq = e->v, .boff = e->boff, .len = e->len,
	};
	return 0;
}

/* The inode's extents as versions 1 and 2 stored them, 24 bytes each.
 * Only br_ckpt_write_version asks for them: images an older bringfs
 * wrote must go on loading, and nothing else makes such a blob. */
static void ser_extents_unpacked(struct ser_ctx *sc, const struct br_inode *in)
{
	struct wbuf *w = sc->w;
	struct br_chunk *ch, *tmp;
	struct br_ckpt_extent *ce;
	size_t at = w->n;

	if (!in->ext.next || !wb_take(w, in->ext.next * sizeof(*ce)))
		return;
	ce = (struct br_ckpt_extent *)(w->p + at);
	HASH_ITER(hh, in->ext.chunks, ch, tmp) {
		for (uint32_t i = 0; i < ch->n; i++, ce++) {
			const struct br_extent *e = &ch->ext[i];

			ce->off = br_le64_put(e->off);
			ce->len = br_le32_put(e->len);
			ce->pad = br_le32_put(0);
			sc->data_bytes += e->len;
			if (e->kind == BR_EXT_DURABLE) {
				ce->addr = br_le64_put(e->v);
				usage_add(sc->usage, sc->nseg, sc->seg_size,
					  e->v, e->len);
			} else {
				ce->addr = br_le64_put(0);
				if (patch_add(w, (size_t)((uint8_t *)&ce->addr -
							  w->p), e))
					return;
			}
		}
	}
}

/* The inode's extents, packed (format.h, blob version 3). */
static void ser_extents(struct ser_ctx *sc, const struct br_inode *in)
{
	struct wbuf *w = sc->w;
	struct br_chunk *ch, *tmp;
	uint64_t end_off = 0, end_addr = 0;
	size_t at = w->n, n = 0;
	uint8_t *p;

	if (sc->ver < 3) {
		ser_extents_unpacked(sc, in);
		return;
	}
	if (!in->ext.next || !wb_take(w, in->ext.next * BR_CKPT_EXT_MAX))
		return;
	p = w->p + at;
	HASH_ITER(hh, in->ext.chunks, ch, tmp) {
		for (uint32_t i = 0; i < ch->n; i++) {
			const struct br_extent *e = &ch->ext[i];
			bool fixed = e->kind != BR_EXT_DURABLE;

			n += br_uvar_put(p + n, br_zigzag(e->off - end_off));
			n += br_uvar_put(p + n, (uint64_t)e->len << 1 | fixed);
			end_off = e->off + e->len;
			sc->data_bytes += e->len;
			if (!fixed) {
				n += br_uvar_put(p + n,
						 br_zigzag(e->v - end_addr));
				end_addr = e->v + e->len;
				usage_add(sc->usage, sc->nseg, sc->seg_size,
					  e->v, e->len);
				continue;
			}
			memset(p + n, 0, 8);
			if (patch_add(w, at + n, e))
				return;
			n += 8;
		}
	}
	wb_trim(w, at, n);
	sc->ext_bytes += n;
	sc->nextents += in->ext.next;
}

static void ser_inode(struct ser_ctx *sc, const struct br_inode *in)
{
	struct wbuf *w = sc->w;
	struct br_ckpt_inode *ci;
	struct br_xattr *x, *xt;
	uint32_t nx = HASH_COUNT(in->xattrs);
	size_t tl = in->target ? strlen(in->target) : 0;

	ci = wb_take(w, sizeof(*ci));
	if (!ci)
		return;
	memset(ci, 0, sizeof(*ci));
	ci->ino = br_le64_put(in->ino);
	ci->parent = br_le64_put(in->parent);
	fs_attr_put(in, &ci->attr);
	ci->nlink = br_le32_put(in->nlink);
	ci->target_len = br_le32_put((uint32_t)tl);
	ci->nxattr = br_le32_put(nx);
	ci->ndirent = br_le32_put(S_ISDIR(in->mode) ? (uint32_t)in->dir.live : 0);
	ci->nextent = br_le64_put(S_ISREG(in->mode) ? in->ext.next : 0);
	if (tl)
		wb_bytes(w, in->target, tl);
	HASH_ITER(hh, in->xattrs, x, xt) {
		struct br_ckpt_xattr *cx = wb_take(w, sizeof(*cx) + x->namelen +
						   x->size);

		if (!cx)
			return;
		cx->name_len = br_le16_put(x->namelen);
		cx->pad = br_le16_put(0);
		cx->value_len = br_le32_put(x->size);
		memcpy(cx + 1, x->name, x->namelen);
		if (x->size)
			memcpy((uint8_t *)(cx + 1) + x->namelen, x->value, x->size);
	}
	if (S_ISDIR(in->mode)) {
		for (size_t i = 0; i < in->dir.n; i++) {
			const struct br_dirent *de = in->dir.order[i].d;
			struct br_ckpt_dirent *cd;

			if (!de)
				continue;
			cd = wb_take(w, sizeof(*cd) + de->namelen);
			if (!cd)
				return;
			cd->ino = br_le64_put(de->ino);
			cd->type = br_le32_put(de->type);
			cd->name_len = br_le16_put(de->namelen);
			cd->pad = br_le16_put(0);
			memcpy(cd + 1, de->name, de->namelen);
		}
	}
	if (S_ISREG(in->mode))
		ser_extents(sc, in);
}

/* Put inode `in` into the snapshot unless it is already there or younger
 * than the cut (map_lock held: write, or read by the walk).  An inode
 * whose first change since the cut is about to happen still holds its
 * state at the cut; one without a name then was not in the map the cut
 * describes. */
static void snap_take(struct br_ckpt *c, struct br_inode *in)
{
	if (in->ckpt_gen == c->snap_gen || in->ino >= c->snap_next_ino)
		return;
	in->ckpt_gen = c->snap_gen;
	if (in->nlink == 0)
		return;
	ser_inode(c->sc, in);
	c->snap_inodes++;
}

void br_ckpt_cow(struct br_fs *fs, struct br_inode *in)
{
	struct br_ckpt *c = fs->ckpt;
	uint64_t t0, dt;

	if (!c || !c->snap || in->ckpt_gen == c->snap_gen ||
	    in->ino >= c->snap_next_ino)
		return;
	t0 = now_ns();
	snap_take(c, in);
	dt = now_ns() - t0;
	c->snap_cow++;
	if (dt > c->snap_cow_max_ns)
		c->snap_cow_max_ns = dt;
}

void br_ckpt_snap_hook(struct br_fs *fs, void (*fn)(void *ctx, int at),
		       void *ctx)
{
	pthread_mutex_lock(&fs->ckpt->lock);
	fs->ckpt->snap_hook = fn;
	fs->ckpt->snap_hook_ctx = ctx;
	pthread_mutex_unlock(&fs->ckpt->lock);
}

void br_ckpt_inode_gone(struct br_fs *fs, struct br_inode *in)
{
	struct br_ckpt *c = fs->ckpt;

	if (c && c->snap && c->cursor == in)
		c->cursor = in->hh.next;
}

/* Step 3's walk: every inode of the map in batches of at most SNAP_BATCH
 * blob bytes or SNAP_VISIT inodes under map_lock read, so a writer waits
 * for one batch at most.  Returns the longest batch (ns). */
#define SNAP_BATCH (64u << 10)
#define SNAP_VISIT 1024u

static uint64_t snap_walk(struct br_fs *fs)
{
	struct br_ckpt *c = fs->ckpt;
	struct wbuf *w = c->sc->w;
	uint64_t longest = 0;
	bool done = false;
	int batches = 0;

	if (c->snap_hook)
		c->snap_hook(c->snap_hook_ctx, 0);

	while (!done) {
		uint64_t t0, dt;
		size_t n0;
		unsigned visited = 0;

		pthread_rwlock_rdlock(&fs->map_lock);
		t0 = now_ns();
		n0 = w->n;
		while (c->cursor && !w->err && w->n - n0 < SNAP_BATCH &&
		       visited++ < SNAP_VISIT) {
			struct br_inode *in = c->cursor;

			c->cursor = in->hh.next;
			snap_take(c, in);
		}
		done = !c->cursor || w->err;
		dt = now_ns() - t0;
		pthread_rwlock_unlock(&fs->map_lock);
		if (dt > longest)
			longest = dt;
		if (c->snap_hook)
			c->snap_hook(c->snap_hook_ctx, ++batches);
		if (!done)
			sched_yield();	/* let waiting writers in */
	}
	return longest;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */
/* ------------------------------------------------------------------ */

static void lock_all(struct br_fs *fs)
{
	pthread_mutex_lock(&fs->ns_lock);
	for (unsigned i = 0; i < FS_INODE_LOCKS; i++)
		pthread_mutex_lock(&fs->ilock[i]);
}

static void unlock_all(struct br_fs *fs)
{
	for (unsigned i = FS_INODE_LOCKS; i-- > 0;)
		pthread_mutex_unlock(&fs->ilock[i]);
	pthread_mutex_unlock(&fs->ns_lock);
}

static void watch_set(struct br_fs *fs, bool on)
{
	struct br_ckpt *c = fs->ckpt;

	pthread_rwlock_wrlock(&fs->map_lock);
	c->watching = on;
	if (on) {
		c->nwatch = 0;
		c->watch_oom = false;
		c->watch_max = UINT64_MAX;	/* until the cut is known */
	}
	pthread_rwlock_unlock(&fs->map_lock);
}

static int append_blob(struct br_fs *fs, uint64_t gen, const uint8_t *blob,
		       uint64_t len, uint64_t *last)
{
	uint32_t piece = br_store_max_record(fs->store) -
			 (uint32_t)sizeof(struct br_rec_ckpt_data);
	struct br_rec_ckpt_head head;
	uint64_t npieces;
	int err;

	if (piece > PIECE_MAX)
		piece = PIECE_MAX;
	piece &= ~(BR_REC_ALIGN - 1);
	npieces = (len + piece - 1) / piece;
	memset(&head, 0, sizeof(head));
	head.h.type = br_le16_put(BR_REC_CKPT_HEAD);
	head.h.len = br_le32_put(sizeof(head));
	head.gen = br_le64_put(gen);
	head.blob_len = br_le64_put(len);
	head.blob_crc = br_le32_put(br_crc32c(0, blob, len));
	head.npieces = br_le32_put((uint32_t)npieces);
	err = br_store_append(fs->store, &head, sizeof(head), last);
	for (uint64_t off = 0; !err && off < len; off += piece) {
		uint32_t n = len - off < piece ? (uint32_t)(len - off) : piece;
		uint32_t rl = (uint32_t)sizeof(struct br_rec_ckpt_data) + n;
		struct br_rec_ckpt_data *d;
		struct br_resv r;

		err = br_store_reserve(fs->store, rl, &r);
		if (err)
			break;
		d = (struct br_rec_ckpt_data *)r.ptr;
		memset(d, 0, sizeof(*d));
		d->h.type = br_le16_put(BR_REC_CKPT_DATA);
		d->h.len = br_le32_put(rl);
		d->gen = br_le64_put(gen);
		d->off = br_le64_put(off);
		memcpy(d + 1, blob + off, n);
		br_store_commit(fs->store, &r);
		*last = r.pos;
	}
	return err;
}

/* The counts br_ckpt_guess weighs: extents (every map's, segment.h),
 * inodes, and the names, xattrs and targets (br_map.var_bytes). */
struct map_counts {
	uint64_t ext, inodes;
	int64_t var;
};

static void map_counts(struct br_fs *fs, struct map_counts *mc)
{
	mc->ext = fs->segs ? atomic_load_explicit(&fs->segs->extents,
						  memory_order_relaxed) : 0;
	mc->inodes = atomic_load_explicit(&fs->map.ninodes,
					  memory_order_relaxed);
	mc->var = atomic_load_explicit(&fs->map.var_bytes,
				       memory_order_relaxed);
}

/* The newest blob is `bytes` long and holds the map as it was with the
 * counts mc. */
static void blob_set(struct br_ckpt *c, uint64_t bytes,
		     const struct map_counts *mc)
{
	atomic_store_explicit(&c->base_ext, mc->ext, memory_order_relaxed);
	atomic_store_explicit(&c->base_inodes, mc->inodes,
			      memory_order_relaxed);
	atomic_store_explicit(&c->base_var, mc->var, memory_order_relaxed);
	atomic_store_explicit(&c->blob_bytes, bytes, memory_order_relaxed);
}

/*
 * Whether a blob of `len` bytes may go into the log now: it must fit in
 * what is left of the log's segment and the free segments beyond
 * BR_CLEAN_META_SEGS (the records that free space, unlink and truncate,
 * keep those; the log's next segment is slack for the records' and
 * buffers' headers).  br_ckpt_guess sizes the room callers keep for a
 * checkpoint, and it is a guess: a blob it misjudged is refused whole,
 * before any of it is written, where a blob that ran out of room half
 * way left the reserve to records no checkpoint could free, and the
 * segments waiting for a checkpoint never came back.
 */
static bool blob_fits(struct br_fs *fs, uint64_t len)
{
	uint64_t seg = fs->sb.seg_size, nfree, at, room;

	if (!fs->segs)
		return true;
	nfree = br_seg_nfree(fs->segs);
	at = br_store_next_addr(fs->store);	/* segment i at i * seg */
	room = at % seg ? seg - at % seg : 0;
	if (nfree > BR_CLEAN_META_SEGS)
		room += (nfree - BR_CLEAN_META_SEGS) * seg;
	return len <= room;
}

/* Bytes an extent takes in the next blob, for br_ckpt_guess: what they
 * took in the last one (n extents in `bytes`), and two more. */
static void ext_cost_set(struct br_ckpt *c, uint64_t bytes, uint64_t n)
{
	if (n)
		atomic_store_explicit(&c->ext_cost, (bytes + n - 1) / n + 2,
				      memory_order_relaxed);
}

static int ckpt_write_locked(struct br_fs *fs)
{
	struct br_ckpt *c = fs->ckpt;
	uint64_t nseg = fs->sb.seg_count, gen = c->next_gen;
	struct wbuf w = { 0 };
	struct ser_ctx sc = { .w = &w, .nseg = nseg, .seg_size = fs->sb.seg_size };
	struct br_rec_ckpt_cut cut;
	const struct watch_ent *we;
	struct br_store_stats ss;
	struct br_slot slot = { 0 };
	uint64_t t0 = now_ns(), t1, cut_pos = 0, last = 0, ninodes = 0, walk_ns = 0;
	uint64_t cow_n = 0, cow_ns = 0;
	struct map_counts at_cut = { 0 };
	struct br_ckpt_blob *b;
	int err;

	/* tests: an older version, as an older bringfs wrote it */
	if (br_ckpt_write_version == 1 || br_ckpt_write_version == 2)
		sc.ver = br_ckpt_write_version;
	else
		sc.ver = BR_CKPT_VERSION;
	if (!fs->store)
		return -EROFS;
	err = br_store_error(fs->store);
	/* before the first version 3 blob (format.h); an older one leaves
	 * the image as an older bringfs would have */
	if (!err && sc.ver == 3)
		err = fs_feature_set(fs, BR_FEATURE_INCOMPAT_CKPT_PACKED);
	if (err)
		return err;
	sc.usage = calloc(nseg ? nseg : 1, sizeof(*sc.usage));
	if (!sc.usage || !wb_take(&w, sizeof(*b))) {
		free(sc.usage);
		wb_free(&w);
		return -ENOMEM;
	}
	memset(w.p, 0, sizeof(*b));

	/* Steps 1-2 of checkpoint.h: writers are blocked from here ... */
	lock_all(fs);
	watch_set(fs, true);
	memset(&cut, 0, sizeof(cut));
	cut.h.type = br_le16_put(BR_REC_CKPT_CUT);
	cut.h.len = br_le32_put(sizeof(cut));
	cut.gen = br_le64_put(gen);
	err = br_store_append(fs->store, &cut, sizeof(cut), &cut_pos);
	if (!err) {
		pthread_rwlock_wrlock(&fs->map_lock);
		c->watch_max = br_pos_seq(cut_pos);
		c->snap = true;
		c->snap_gen = gen;
		c->snap_next_ino = fs->map.next_ino;
		c->sc = &sc;
		c->cursor = fs->map.inodes;
		c->snap_inodes = c->snap_cow = c->snap_cow_max_ns = 0;
		b = (struct br_ckpt_blob *)w.p;
		b->next_ino = br_le64_put(fs->map.next_ino);
		map_counts(fs, &at_cut);
		pthread_rwlock_unlock(&fs->map_lock);
	}
	unlock_all(fs);
	t1 = now_ns();
	/* ... to here; step 3 runs beside them. */
	if (err)
		goto out;
	walk_ns = snap_walk(fs);
	pthread_rwlock_wrlock(&fs->map_lock);
	c->snap = false;
	c->sc = NULL;
	c->cursor = NULL;
	ninodes = c->snap_inodes;
	cow_n = c->snap_cow;
	cow_ns = c->snap_cow_max_ns;
	pthread_rwlock_unlock(&fs->map_lock);
	err = w.err;
	if (err)
		goto out;
	b = (struct br_ckpt_blob *)w.p;
	b->magic = br_le32_put(BR_CKPT_MAGIC);
	b->version = br_le32_put(sc.ver);
	b->gen = br_le64_put(gen);
	b->ninodes = br_le64_put(ninodes);
	b->nseg = br_le64_put(nseg);

	err = br_store_sync(fs->store, cut_pos);
	watch_set(fs, false);	/* every buffer up to the cut has completed */
	if (err)
		goto out;
	if (c->watch_oom) {
		err = -ENOMEM;
		goto out;
	}
	/* The roll-forward point: the cut's buffer. */
	we = watch_find(c, br_pos_seq(cut_pos));
	if (!we) {
		err = -EIO;	/* sync returned before its buffer completed */
		goto out;
	}
	slot.roll_addr = we->addr;
	slot.roll_seq = we->seq;
	slot.roll_nonce = we->prev_nonce;
	slot.roll_skip = (uint32_t)(cut_pos & 0xffffffffu);
	for (size_t i = 0; i < w.np; i++) {
		const struct watch_ent *pe = watch_find(c, w.pv[i].seq);
		br_le64 addr;

		if (!pe) {
			err = -EIO;
			goto out;
		}
		addr = br_le64_put(pe->addr + w.pv[i].boff);
		memcpy(w.p + w.pv[i].at, &addr, sizeof(addr));
		usage_add(sc.usage, nseg, sc.seg_size, br_le64_get(addr),
			  w.pv[i].len);
	}
	b = (struct br_ckpt_blob *)w.p;
	b->usage_off = br_le64_put(w.n);
	b->data_bytes = br_le64_put(sc.data_bytes);
	for (uint64_t i = 0; i < nseg; i++) {
		br_le64 v = br_le64_put(sc.usage[i]);

		wb_bytes(&w, &v, sizeof(v));
	}
	/* Segment ages as they are now (a little newer than the cut's:
	 * only the cleaner's clock, never a correctness input).  Version 1
	 * has none: age_off stays 0. */
	b = (struct br_ckpt_blob *)w.p;
	if (sc.ver > 1) {
		b->age_off = br_le64_put(w.n);
		for (uint64_t i = 0; i < nseg; i++) {
			br_le64 v = br_le64_put(0);

			if (fs->segs && i < fs->segs->nseg)
				v = br_le64_put(atomic_load_explicit(
					&fs->segs->v[i].newest,
					memory_order_relaxed));
			wb_bytes(&w, &v, sizeof(v));
		}
	}
	err = w.err;
	if (!err && !blob_fits(fs, w.n))
		err = -ENOSPC;
	if (err)
		goto out;
	err = append_blob(fs, gen, w.p, w.n, &last);
	if (!err)
		err = br_store_sync(fs->store, last);
	if (err)
		goto out;
	slot.seq = gen;
	slot.ckpt_addr = slot.roll_addr;
	err = br_slot_write(fs->fd, &fs->sb, c->next_which, &slot);
	if (err)
		goto out;
	/* Segments that hold nothing newer than its roll point (and nothing
	 * live, killed by durable records) are free from now on
	 * (segment.h, "Reuse"). */
	if (fs->segs)
		br_seg_ckpt_durable(fs->segs, slot.roll_seq);
	br_store_stats(fs->store, &ss);
	c->bytes_base = ss.bytes;
	c->next_which ^= 1;
	c->st.written++;
	c->st.last_gen = gen;
	c->st.last_blob_bytes = w.n;
	blob_set(c, w.n, &at_cut);
	ext_cost_set(c, sc.ext_bytes, sc.nextents);
	c->st.last_inodes = ninodes;
	/* The longest a writer could have waited: the cut, one batch of the
	 * walk, or putting one inode into the snapshot itself. */
	c->st.last_cut_ns = t1 - t0;
	c->st.last_walk_batch_ns = walk_ns;
	c->st.last_cow_inodes = cow_n;
	c->st.last_cow_max_ns = cow_ns;
	c->st.last_block_ns = t1 - t0;
	if (walk_ns > c->st.last_block_ns)
		c->st.last_block_ns = walk_ns;
	if (cow_ns > c->st.last_block_ns)
		c->st.last_block_ns = cow_ns;
	if (c->st.last_block_ns > c->st.max_block_ns)
		c->st.max_block_ns = c->st.last_block_ns;
	c->st.last_total_ns = now_ns() - t0;
out:
	if (c->watching)
		watch_set(fs, false);
	/* A failed attempt may have left records of `gen` in the log: never
	 * publish another checkpoint under the same generation. */
	c->next_gen = gen + 1;
	wb_free(&w);
	free(sc.usage);
	return err;
}

int br_ckpt_write(struct br_fs *fs)
{
	struct br_ckpt *c = fs->ckpt;
	int err;

	pthread_mutex_lock(&c->lock);
	err = ckpt_write_locked(fs);
	pthread_mutex_unlock(&c->lock);
	/* Segments this checkpoint freed go back to the device (no lock
	 * held; a failed discard only costs space on the device). */
	if (!err && fs->segs)
		br_seg_discard(fs->segs);
	return err;
}

bool br_ckpt_needed(struct br_fs *fs)
{
	struct br_ckpt *c = fs->ckpt;
	struct br_store_stats ss;
	bool need;

	if (!fs->store)
		return false;
	br_store_sync_all(fs->store);
	br_store_stats(fs->store, &ss);
	pthread_mutex_lock(&c->lock);
	need = c->st.last_gen == 0 || c->st.tail_records > 0 ||
	       ss.bytes != c->bytes_base;
	pthread_mutex_unlock(&c->lock);
	return need;
}

static uint64_t ckpt_guess(struct br_fs *fs)
{
	struct br_ckpt *c = fs->ckpt;
	uint64_t blob = c ? atomic_load_explicit(&c->blob_bytes,
						 memory_order_relaxed) : 0;
	uint64_t ext = c ? atomic_load_explicit(&c->ext_cost,
						memory_order_relaxed) : 0;
	uint64_t e0 = c ? atomic_load_explicit(&c->base_ext,
					       memory_order_relaxed) : 0;
	uint64_t i0 = c ? atomic_load_explicit(&c->base_inodes,
					       memory_order_relaxed) : 0;
	int64_t v0 = c ? atomic_load_explicit(&c->base_var,
					      memory_order_relaxed) : 0;
	/* an inode and its entry (their names, xattrs and targets are in
	 * var_bytes); an extent as packed in the last blob and two bytes
	 * more (BR_CKPT_EXT_MAX before any) */
	const uint64_t per_inode = sizeof(struct br_ckpt_inode) +
				   sizeof(struct br_ckpt_dirent);
	struct map_counts mc;
	uint64_t more;

	map_counts(fs, &mc);
	if (!ext)
		ext = BR_CKPT_EXT_MAX;
	if (!blob) {	/* nothing measured: the map counted (all of it
			 * applied since mkfs), a quarter more, the usage
			 * and age tables */
		more = mc.inodes * per_inode + mc.ext * ext +
		       (mc.var > 0 ? (uint64_t)mc.var : 0);
		return more + more / 4 + 16 * fs->sb.seg_count + (64u << 10);
	}
	/* The newest blob, what the map gained since (it lags a map that
	 * grew: a fresh filesystem's first checkpoint came to 1.6 MB with
	 * 64 KiB guessed and took the reserve a delete needs), a
	 * sixteenth and 64 KiB.  The map counted whole, a quarter more,
	 * came to 3.0 MB where the blobs were 1.85 (90 % of 1 GiB
	 * fragmented by 4 KiB overwrites): two segments of reserve for
	 * one segment's blob.  blob_fits refuses a blob larger than the
	 * room. */
	more = (mc.ext > e0 ? (mc.ext - e0) * ext : 0) +
	       (mc.inodes > i0 ? (mc.inodes - i0) * per_inode : 0) +
	       (mc.var > v0 ? (uint64_t)(mc.var - v0) : 0);
	return blob + more + blob / 16 + (64u << 10);
}

uint64_t br_ckpt_guess_short;

uint64_t br_ckpt_guess(struct br_fs *fs)
{
	uint64_t g = ckpt_guess(fs);

	return g > br_ckpt_guess_short ? g - br_ckpt_guess_short : 0;
}

uint64_t br_ckpt_segs(struct br_fs *fs)
{
	uint64_t seg = fs->sb.seg_size;

	return (br_ckpt_guess(fs) + seg - 1) / seg;
}

bool br_ckpt_pays(struct br_fs *fs, uint64_t segs)
{
	uint64_t seg = fs->sb.seg_size;

	return segs * seg > br_ckpt_guess(fs) + seg;
}

void br_ckpt_stats(struct br_fs *fs, struct br_ckpt_stats *st)
{
	pthread_mutex_lock(&fs->ckpt->lock);
	*st = fs->ckpt->st;
	pthread_mutex_unlock(&fs->ckpt->lock);
}

void br_ckpt_usage(struct br_fs *fs, uint64_t *usage, uint64_t nseg)
{
	struct br_inode *in, *tmp;
	struct br_chunk *ch, *ct;

	memset(usage, 0, nseg * sizeof(*usage));
	HASH_ITER(hh, fs->map.inodes, in, tmp) {
		HASH_ITER(hh, in->ext.chunks, ch, ct) {
			for (uint32_t i = 0; i < ch->n; i++)
				if (ch->ext[i].kind == BR_EXT_DURABLE)
					usage_add(usage, nseg, fs->sb.seg_size,
						  ch->ext[i].v, ch->ext[i].len);
		}
	}
}

const uint64_t *br_ckpt_loaded_usage(struct br_fs *fs, uint64_t *nseg)
{
	*nseg = fs->ckpt->loaded_nseg;
	return fs->ckpt->loaded_usage;
}

/* ------------------------------------------------------------------ */
/* Background thread                                                    */
/* ------------------------------------------------------------------ */

static void *ckpt_thread(void *arg)
{
	struct br_fs *fs = arg;
	struct br_ckpt *c = fs->ckpt;
	uint64_t since = 0;	/* when a change was first seen, 0: none */

	pthread_mutex_lock(&c->w.lock);
	while (!c->w.stop) {
		struct br_store_stats ss;
		uint64_t base, t, blob;
		uint32_t secs;
		bool due;

		br_worker_wait(&c->w, 200);	/* 5 cheap looks a second */
		if (c->w.stop)
			break;
		br_store_stats(fs->store, &ss);
		pthread_mutex_lock(&c->lock);
		base = c->bytes_base;
		pthread_mutex_unlock(&c->lock);
		t = now_ns();
		if (ss.bytes == base) {
			since = 0;
			continue;
		}
		if (!since)
			since = t;
		blob = atomic_load_explicit(&c->blob_bytes,
					    memory_order_relaxed);
		secs = c->every_secs ? c->every_secs : br_ckpt_secs_default;
		due = (c->every_bytes != UINT64_MAX &&
		       ss.bytes - base >= br_ckpt_every_bytes(c->every_bytes,
							      blob)) ||
		      (c->every_secs != UINT32_MAX &&
		       t - since >= (uint64_t)secs * 1000000000ull &&
		       (c->every_secs ||
			ss.bytes - base >= blob * BR_CKPT_SECS_LOG_PER_BLOB));
		if (!due)
			continue;
		pthread_mutex_unlock(&c->w.lock);
		{
			int err = br_ckpt_write(fs);

			pthread_mutex_lock(&c->lock);
			c->st.last_err = err;
			pthread_mutex_unlock(&c->lock);
		}
		since = 0;
		pthread_mutex_lock(&c->w.lock);
	}
	pthread_mutex_unlock(&c->w.lock);
	return NULL;
}

uint64_t br_ckpt_bytes_default = BR_CKPT_BYTES_DEFAULT;
uint32_t br_ckpt_secs_default = BR_CKPT_SECS_DEFAULT;

uint64_t br_ckpt_every_bytes(uint64_t bytes, uint64_t blob)
{
	uint64_t scaled = blob > BR_CKPT_BYTES_SCALED_MAX / BR_CKPT_LOG_PER_BLOB ?
			  BR_CKPT_BYTES_SCALED_MAX : blob * BR_CKPT_LOG_PER_BLOB;

	if (bytes)
		return bytes;
	return scaled > br_ckpt_bytes_default ? scaled : br_ckpt_bytes_default;
}

int br_ckpt_start(struct br_fs *fs, uint64_t bytes, uint32_t secs)
{
	struct br_ckpt *c = fs->ckpt;

	if (c->w.running)
		return 0;
	c->every_bytes = bytes;	/* 0: the default, br_ckpt_every_bytes */
	c->every_secs = secs;	/* 0: the default, ckpt_thread */
	if (c->every_bytes == UINT64_MAX && c->every_secs == UINT32_MAX)
		return 0;
	return br_worker_start(&c->w, ckpt_thread, fs);
}

void br_ckpt_stop(struct br_fs *fs)
{
	if (fs->ckpt)
		br_worker_stop(&fs->ckpt->w);
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */
/* ------------------------------------------------------------------ */

/* A cursor over the blob: every read is bounds-checked. */
struct rbuf {
	const uint8_t *p;
	uint64_t n, off;
};

static const void *rb_take(struct rbuf *r, uint64_t len)
{
	uint64_t padded = (len + 7) & ~(uint64_t)7;
	const void *v;

	if (padded < len || r->n - r->off < padded)
		return NULL;
	v = r->p + r->off;
	r->off += padded;
	return v;
}

static bool name_ok(const char *p, size_t len)
{
	if (len == 0 || len > BR_NAME_MAX || memchr(p, '/', len) ||
	    memchr(p, 0, len))
		return false;
	return !((len == 1 && p[0] == '.') ||
		 (len == 2 && p[0] == '.' && p[1] == '.'));
}

/* An extent of a version 1 or 2 blob. */
static int extent_get(struct rbuf *r, uint64_t *off, uint64_t *len,
		      uint64_t *addr)
{
	const struct br_ckpt_extent *ce = rb_take(r, sizeof(*ce));

	if (!ce)
		return CORRUPT;
	*off = br_le64_get(ce->off);
	*len = br_le32_get(ce->len);
	*addr = br_le64_get(ce->addr);
	return 0;
}

/* The packed extents of one inode (blob version 3, format.h). */
struct packed {
	struct rbuf *r;
	uint64_t at;			/* where they start in r */
	uint64_t end_off, end_addr;
};

/* The varint at r's offset, which moves past it.  false: none there. */
static bool rb_uvar(struct rbuf *r, uint64_t *v)
{
	unsigned k = br_uvar_get(r->p + r->off, r->n - r->off, v);

	r->off += k;
	return k != 0;
}

static int packed_get(struct packed *pk, uint64_t *off, uint64_t *len,
		      uint64_t *addr)
{
	struct rbuf *r = pk->r;
	uint64_t v;

	if (!rb_uvar(r, &v))
		return CORRUPT;
	*off = pk->end_off + br_unzigzag(v);
	if (!rb_uvar(r, &v))
		return CORRUPT;
	*len = v >> 1;
	pk->end_off = *off + *len;
	if (v & 1) {
		br_le64 a;

		if (r->n - r->off < sizeof(a))
			return CORRUPT;
		memcpy(&a, r->p + r->off, sizeof(a));
		r->off += sizeof(a);
		*addr = br_le64_get(a);
		return 0;
	}
	if (!rb_uvar(r, &v))
		return CORRUPT;
	*addr = pk->end_addr + br_unzigzag(v);
	pk->end_addr = *addr + *len;
	return 0;
}

/* After the last packed extent: the padding to 8, zeros. */
static int packed_end(struct packed *pk)
{
	struct rbuf *r = pk->r;

	while ((r->off - pk->at) % 8) {
		if (r->off >= r->n || r->p[r->off])
			return CORRUPT;
		r->off++;
	}
	return 0;
}

static int load_inode(struct br_fs *fs, struct rbuf *r, uint32_t ver,
		      uint64_t *usage, uint64_t nseg)
{
	const struct br_ckpt_inode *ci = rb_take(r, sizeof(*ci));
	struct packed pk = { .r = r };
	struct br_inode *in;
	uint32_t mode, tl, nx, nd;
	uint64_t ne;
	int err;

	if (!ci)
		return CORRUPT;
	mode = br_le32_get(ci->attr.mode);
	tl = br_le32_get(ci->target_len);
	nx = br_le32_get(ci->nxattr);
	nd = br_le32_get(ci->ndirent);
	ne = br_le64_get(ci->nextent);
	if (br_le64_get(ci->ino) == 0 || br_le32_get(ci->nlink) == 0 ||
	    (S_ISLNK(mode) != (tl > 0)) || tl >= 4096 ||
	    (!S_ISDIR(mode) && nd) || (!S_ISREG(mode) && ne))
		return CORRUPT;
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break;
	default:
		return CORRUPT;
	}
	err = br_map_inode_new(&fs->map, br_le64_get(ci->ino), mode, &in);
	if (err)
		return err == -EEXIST ? CORRUPT : err;
	in->uid = br_le32_get(ci->attr.uid);
	in->gid = br_le32_get(ci->attr.gid);
	in->rdev = br_le64_get(ci->attr.rdev);
	in->size = br_le64_get(ci->attr.size);
	in->atime = fs_time_get(&ci->attr.atime);
	in->mtime = fs_time_get(&ci->attr.mtime);
	in->ctime = fs_time_get(&ci->attr.ctime);
	in->nlink = br_le32_get(ci->nlink);
	in->parent = br_le64_get(ci->parent);
	if (tl) {
		const char *t = rb_take(r, tl);

		if (!t || memchr(t, 0, tl))
			return CORRUPT;
		in->target = malloc(tl + 1);
		if (!in->target)
			return -ENOMEM;
		memcpy(in->target, t, tl);
		in->target[tl] = 0;
	}
	for (uint32_t i = 0; i < nx; i++) {
		const struct br_ckpt_xattr *cx = rb_take(r, sizeof(*cx));
		uint32_t nl, vl;
		char name[BR_NAME_MAX + 1];
		const uint8_t *p;

		if (!cx)
			return CORRUPT;
		nl = br_le16_get(cx->name_len);
		vl = br_le32_get(cx->value_len);
		/* name and value were padded together: step back and retake */
		r->off -= sizeof(*cx);
		if (nl == 0 || nl > BR_NAME_MAX || vl > 65536 ||
		    !rb_take(r, sizeof(*cx) + nl + vl))
			return CORRUPT;
		p = (const uint8_t *)(cx + 1);
		if (memchr(p, 0, nl))
			return CORRUPT;
		memcpy(name, p, nl);
		name[nl] = 0;
		err = br_xattr_set(&in->xattrs, name, p + nl, vl, BR_XATTR_CREATE);
		if (err)
			return err == -EEXIST ? CORRUPT : err;
	}
	for (uint32_t i = 0; i < nd; i++) {
		const struct br_ckpt_dirent *cd = rb_take(r, sizeof(*cd));
		uint32_t nl;

		if (!cd)
			return CORRUPT;
		nl = br_le16_get(cd->name_len);
		r->off -= sizeof(*cd);
		if (!rb_take(r, sizeof(*cd) + nl) ||
		    !name_ok((const char *)(cd + 1), nl) ||
		    br_le64_get(cd->ino) == 0)
			return CORRUPT;
		err = br_dir_add(&in->dir, (const char *)(cd + 1), nl,
				 br_le64_get(cd->ino), br_le32_get(cd->type), NULL);
		if (err)
			return err == -EEXIST ? CORRUPT : err;
	}
	pk.at = r->off;
	for (uint64_t i = 0; i < ne; i++) {
		struct br_loc loc = { .kind = BR_EXT_DURABLE };
		uint64_t off, len;

		err = ver < 3 ? extent_get(r, &off, &len, &loc.v) :
		      packed_get(&pk, &off, &len, &loc.v);
		if (err)
			return err;
		if (len == 0 || len > BR_CHUNK_SIZE || off + len < off ||
		    off >> BR_CHUNK_SHIFT != (off + len - 1) >> BR_CHUNK_SHIFT ||
		    loc.v < fs->sb.log_start || loc.v > fs->sb.log_end ||
		    len > fs->sb.log_end - loc.v)
			return CORRUPT;
		err = br_extmap_insert(&in->ext, off, len, &loc);
		if (err)
			return err;
		usage_add(usage, nseg, fs->sb.seg_size, loc.v, len);
	}
	if (ver < 3 || !ne)
		return 0;
	fs->ckpt->ld_ext_bytes += r->off - pk.at;
	fs->ckpt->ld_ext_n += ne;
	return packed_end(&pk);
}

static int load_blob(struct br_fs *fs, const uint8_t *blob, uint64_t len,
		     uint64_t gen)
{
	const struct br_ckpt_blob *b = (const void *)blob;
	struct br_ckpt *c = fs->ckpt;
	struct rbuf r = { .p = blob, .n = len };
	uint64_t n, uoff, aoff, nseg, next_ino, *usage, *stored, tables;
	uint32_t ver;
	int err = 0;

	if (len < sizeof(*b) || br_le32_get(b->magic) != BR_CKPT_MAGIC ||
	    br_le64_get(b->gen) != gen)
		return CORRUPT;
	ver = br_le32_get(b->version);
	if (ver < 1 || ver > BR_CKPT_VERSION ||
	    (ver == 3 &&
	     !(fs->sb.feat_incompat & BR_FEATURE_INCOMPAT_CKPT_PACKED)))
		return CORRUPT;
	n = br_le64_get(b->ninodes);
	uoff = br_le64_get(b->usage_off);
	aoff = br_le64_get(b->age_off);
	nseg = br_le64_get(b->nseg);
	next_ino = br_le64_get(b->next_ino);
	/* version 1: usage table only; 2: usage then age table */
	tables = ver == 1 ? 1 : 2;
	if (nseg != fs->sb.seg_count || uoff % 8 || uoff < sizeof(*b) ||
	    uoff > len || (len - uoff) % 8 || (len - uoff) / 8 / tables != nseg ||
	    (len - uoff) / 8 % tables ||
	    (ver == 1 ? aoff != 0 : aoff != uoff + 8 * nseg))
		return CORRUPT;
	usage = calloc(nseg ? nseg : 1, sizeof(*usage));
	stored = calloc(nseg ? nseg : 1, sizeof(*stored));
	if (!usage || !stored) {
		err = -ENOMEM;
		goto out;
	}
	r.n = uoff;
	r.off = sizeof(*b);
	c->ld_ext_bytes = c->ld_ext_n = 0;	/* this blob's alone */
	for (uint64_t i = 0; i < n && !err; i++)
		err = load_inode(fs, &r, ver, usage, nseg);
	if (err)
		goto out;
	if (r.off != uoff || !br_map_inode_find(&fs->map, BR_ROOT_INO)) {
		err = CORRUPT;
		goto out;
	}
	if (next_ino > fs->map.next_ino)
		fs->map.next_ino = next_ino;
	ext_cost_set(c, c->ld_ext_bytes, c->ld_ext_n);
	c->st.usage_mismatch = 0;
	for (uint64_t i = 0; i < nseg; i++) {
		br_le64 v;

		memcpy(&v, blob + uoff + i * 8, sizeof(v));
		stored[i] = br_le64_get(v);
		if (stored[i] != usage[i])
			c->st.usage_mismatch++;
		/* the cleaner's clock survives the remount (roll-forward
		 * raises what the tail places) */
		if (aoff && fs->segs && i < fs->segs->nseg) {
			memcpy(&v, blob + aoff + i * 8, sizeof(v));
			br_seg_age(fs->segs, i, br_le64_get(v), 0);
		}
	}
	free(c->loaded_usage);
	c->loaded_usage = stored;
	c->loaded_nseg = nseg;
	stored = NULL;
out:
	free(usage);
	free(stored);
	return err;
}

/* Finding the blob: scan from the roll point (pass 1). */
struct find_ctx {
	struct br_replay *rp;
	uint64_t roll_addr;
	uint32_t roll_skip;
	uint64_t gen, max_len;
	uint8_t *blob;
	uint64_t len, got;
	uint32_t crc, npieces, pieces;
	bool bad;
};

#define FOUND 1

static bool covered(const struct br_replay *rp, uint64_t roll_addr,
		    uint32_t skip, uint64_t addr)
{
	return rp->buffers == 0 && addr - roll_addr < skip;
}

static int find_record(void *ctx, const struct br_rec_header *h, uint32_t len,
		       uint64_t addr)
{
	struct find_ctx *f = ctx;
	uint16_t type = br_le16_get(h->type);

	if (covered(f->rp, f->roll_addr, f->roll_skip, addr))
		return 0;
	if (type == BR_REC_CKPT_HEAD && len >= sizeof(struct br_rec_ckpt_head)) {
		const struct br_rec_ckpt_head *hd = (const void *)h;

		if (br_le64_get(hd->gen) != f->gen || f->blob)
			return 0;
		f->len = br_le64_get(hd->blob_len);
		f->crc = br_le32_get(hd->blob_crc);
		f->npieces = br_le32_get(hd->npieces);
		if (f->len < sizeof(struct br_ckpt_blob) || f->len > f->max_len ||
		    f->npieces == 0) {
			f->bad = true;
			return FOUND;
		}
		f->blob = malloc(f->len);
		return f->blob ? 0 : -ENOMEM;
	}
	if (type == BR_REC_CKPT_DATA && len >= sizeof(struct br_rec_ckpt_data)) {
		const struct br_rec_ckpt_data *d = (const void *)h;
		uint64_t n = len - sizeof(*d);

		if (br_le64_get(d->gen) != f->gen || !f->blob)
			return 0;
		/* one writer appends the pieces in order */
		if (br_le64_get(d->off) != f->got || n > f->len - f->got) {
			f->bad = true;
			return FOUND;
		}
		memcpy(f->blob + f->got, d + 1, n);
		f->got += n;
		if (++f->pieces == f->npieces)
			return FOUND;
	}
	return 0;
}

static int load_ckpt(struct br_fs *fs, const struct br_slot *s, char *why,
		     size_t why_len)
{
	struct br_replay rp = { 0 };
	struct find_ctx f = { 0 };
	uint64_t t0 = now_ns();
	int err;

	rp.fd = fs->rfd;
	rp.fsid = fs->fsid;
	rp.log_start = fs->sb.log_start;
	rp.log_end = fs->sb.log_end;
	rp.seg_size = fs->sb.seg_size;
	rp.addr = s->roll_addr;
	rp.seq = s->roll_seq;
	rp.nonce = s->roll_nonce;
	rp.fn = find_record;
	rp.ctx = &f;
	f.rp = &rp;
	f.roll_addr = s->roll_addr;
	f.roll_skip = s->roll_skip;
	f.gen = s->seq;
	f.max_len = fs->sb.log_end - fs->sb.log_start;
	err = br_replay_scan(&rp);
	if (err < 0)
		goto out;
	err = 0;
	if (f.bad || !f.blob || f.pieces != f.npieces || f.got != f.len) {
		br_why(why, why_len, "checkpoint %llu is incomplete (%llu of %llu bytes found)",
			(unsigned long long)s->seq, (unsigned long long)f.got,
			(unsigned long long)f.len);
		err = CORRUPT;
		goto out;
	}
	if (br_crc32c(0, f.blob, f.len) != f.crc) {
		br_why(why, why_len, "checkpoint %llu fails its CRC",
			(unsigned long long)s->seq);
		err = CORRUPT;
		goto out;
	}
	err = load_blob(fs, f.blob, f.len, s->seq);
	if (!err) {
		struct map_counts mc;

		map_counts(fs, &mc);
		blob_set(fs->ckpt, f.len, &mc);
		fs->ckpt->st.loaded_blob_bytes = f.len;
	}
	if (err == CORRUPT)
		br_why(why, why_len, "checkpoint %llu does not parse",
			(unsigned long long)s->seq);
out:
	free(f.blob);
	fs->ckpt->st.load_ns = now_ns() - t0;
	return err;
}

/* Roll-forward (pass 2). */
struct roll_ctx {
	struct br_fs *fs;
	struct br_replay *rp;
	uint64_t roll_addr;
	uint32_t roll_skip;
	uint64_t applied;
	uint64_t bad_addr;
	int bad_type;
};

static int roll_record(void *ctx, const struct br_rec_header *h, uint32_t len,
		       uint64_t addr)
{
	struct roll_ctx *rc = ctx;
	uint16_t type = br_le16_get(h->type);
	struct fs_apply ax = {
		.data = { .kind = BR_EXT_DURABLE,
			  .v = addr + sizeof(struct br_rec_data) },
	};
	int err;

	/* rp->seq is the generation of the buffer being scanned: the
	 * segment holds records the loaded checkpoint does not cover */
	if (rc->fs->segs)
		br_seg_placed(rc->fs->segs, addr, rc->rp->seq);
	if (covered(rc->rp, rc->roll_addr, rc->roll_skip, addr) ||
	    type == BR_REC_CKPT_CUT || type == BR_REC_CKPT_HEAD ||
	    type == BR_REC_CKPT_DATA || rc->fs->ckpt_only)
		return 0;
	err = fs_apply(rc->fs, h, len, &ax);
	if (err) {
		rc->bad_addr = addr;
		rc->bad_type = type;
		return err;
	}
	rc->applied++;
	return 0;
}

static int read_slots(struct br_fs *fs, struct br_slot *s, int *err)
{
	uint8_t *blk;
	int n = 0;

	if (posix_memalign((void **)&blk, BR_BLOCK_SIZE, BR_BLOCK_SIZE))
		return -ENOMEM;
	for (unsigned w = 0; w < 2; w++) {
		ssize_t got = pread(fs->rfd, blk, BR_BLOCK_SIZE,
				    (off_t)BR_SLOT_OFF(w));

		if (got != BR_BLOCK_SIZE)
			err[w] = got < 0 ? -errno : -EIO;
		else
			err[w] = br_slot_decode(&fs->sb, blk, &s[w]);
		s[w].which = w;
		if (!err[w])
			n++;
	}
	free(blk);
	return n;
}

static void map_reset(struct br_fs *fs)
{
	br_map_free(&fs->map, NULL);
	br_map_init(&fs->map);
	fs->map.segs = fs->segs;
	if (fs->segs)
		br_seg_reset(fs->segs);
}

int br_ckpt_mount(struct br_fs *fs, struct br_replay *out, char *why,
		  size_t why_len)
{
	struct br_ckpt *c = fs->ckpt;
	struct br_slot s[2] = { 0 }, *order[2];
	int serr[2], err = CORRUPT, nvalid;
	char lwhy[200] = "";
	unsigned no = 0;

	nvalid = read_slots(fs, s, serr);
	if (nvalid < 0)
		return nvalid;
	if (nvalid == 0) {
		err = serr[0] != CORRUPT ? serr[0] : serr[1];
		br_why(why, why_len, "no valid checkpoint slot: %s",
			err == CORRUPT ? "both are damaged" : strerror(-err));
		return err;
	}
	if (!serr[0] && !serr[1]) {
		order[0] = s[1].seq > s[0].seq ? &s[1] : &s[0];
		order[1] = order[0] == &s[0] ? &s[1] : &s[0];
		no = 2;
	} else {
		order[0] = serr[0] ? &s[1] : &s[0];
		no = 1;
	}
	c->next_gen = (no == 2 ? (s[0].seq > s[1].seq ? s[0].seq : s[1].seq)
			       : order[0]->seq) + 1;
	for (unsigned i = 0; i < no; i++) {
		const struct br_slot *sl = order[i];
		struct br_replay rp = { 0 };
		struct roll_ctx rc = { .fs = fs, .rp = &rp };

		if (i > 0)
			map_reset(fs);
		if (sl->ckpt_addr) {
			err = load_ckpt(fs, sl, lwhy, sizeof(lwhy));
			if (err == CORRUPT)
				continue;	/* try the older slot */
			if (err)
				return err;
		}
		rp.fd = fs->rfd;
		rp.fsid = fs->fsid;
		rp.log_start = fs->sb.log_start;
		rp.log_end = fs->sb.log_end;
		rp.seg_size = fs->sb.seg_size;
		rp.addr = sl->roll_addr;
		rp.seq = sl->roll_seq;
		rp.nonce = sl->roll_nonce;
		rp.fn = roll_record;
		rp.ctx = &rc;
		rc.roll_addr = sl->roll_addr;
		rc.roll_skip = sl->roll_skip;
		err = br_replay_scan(&rp);
		if (err == CORRUPT) {
			br_why(why, why_len, "log record of type %d at byte %llu contradicts the records before it",
				rc.bad_type, (unsigned long long)rc.bad_addr);
			return err;
		}
		if (err) {
			br_why(why, why_len, "reading the log failed: %s",
				strerror(-err));
			return err;
		}
		if (i > 0 && rp.seq < order[0]->roll_seq) {
			/* The newer slot proves the log was durable through its
			 * cut; this older state does not reach the buffer
			 * before the cut's (its log was reused or damaged), so
			 * mounting it would silently drop files that were
			 * promised.  Refuse.  (Reaching it is enough: the cut's
			 * own buffer may be what the damage took.) */
			br_why(why, why_len, "the newest checkpoint (generation %llu) is damaged (%s) and the older one cannot reach it: its log ends at buffer %llu, before buffer %llu",
				(unsigned long long)order[0]->seq, lwhy,
				(unsigned long long)rp.seq,
				(unsigned long long)order[0]->roll_seq);
			return CORRUPT;
		}
		c->next_which = sl->which ^ 1;
		c->st.loaded_gen = sl->ckpt_addr ? sl->seq : 0;
		c->st.last_gen = c->st.loaded_gen;
		c->st.fallback = i > 0;
		c->st.tail_buffers = rp.buffers;
		c->st.tail_records = rc.applied;
		if (fs->segs)
			br_seg_ckpt_durable(fs->segs, sl->roll_seq);
		*out = rp;
		return 0;
	}
	br_why(why, why_len, "no checkpoint can be loaded (newest: %s)", lwhy);
	return CORRUPT;
}
