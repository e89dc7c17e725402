/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Records -> map.  The one place that knows what a record means: the
 * mounted filesystem checks a change with fs_apply(dry) under the namespace
 * or inode lock, logs the record, then applies it with the same function;
 * replay applies the log's records with it.  Every function checks the
 * whole record before it changes anything, so a record is applied entirely
 * or not at all (up to -ENOMEM in the middle of a multi-chunk extent
 * insert, which leaves the data half-mapped but the tree consistent).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "fsys_int.h"
#include "segment.h"

#define CORRUPT BR_ERR_CORRUPT

static bool name_ok(const char *p, size_t len)
{
	if (len == 0 || len > BR_NAME_MAX)
		return false;
	if (memchr(p, '/', len) || memchr(p, 0, len))
		return false;
	if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
		return false;
	return true;
}

static bool type_ok(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		return true;
	}
	return false;
}

static struct br_inode *live_dir(struct br_fs *fs, uint64_t ino)
{
	struct br_inode *d = br_map_inode_find(&fs->map, ino);

	if (!d || !S_ISDIR(d->mode) || d->nlink == 0)
		return NULL;
	return d;
}

static void touch(struct br_inode *in, struct timespec t, uint64_t pos,
		  bool mtime)
{
	in->ctime = t;
	if (mtime)
		in->mtime = t;
	if (pos > in->pos)
		in->pos = pos;
}

void fs_attr_put(const struct br_inode *in, struct br_disk_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->mode = br_le32_put(in->mode);
	a->uid = br_le32_put(in->uid);
	a->gid = br_le32_put(in->gid);
	a->rdev = br_le64_put(in->rdev);
	a->size = br_le64_put(in->size);
	a->atime = fs_time_put(in->atime);
	a->mtime = fs_time_put(in->mtime);
	a->ctime = fs_time_put(in->ctime);
}

static void attr_get(struct br_inode *in, const struct br_disk_attr *a)
{
	/* read without map_lock by writes (fsys.c, mode_of) */
	__atomic_store_n(&in->mode, br_le32_get(a->mode), __ATOMIC_RELAXED);
	in->uid = br_le32_get(a->uid);
	in->gid = br_le32_get(a->gid);
	in->rdev = br_le64_get(a->rdev);
	in->atime = fs_time_get(&a->atime);
	in->mtime = fs_time_get(&a->mtime);
	in->ctime = fs_time_get(&a->ctime);
}

/* Every change below starts with cow() for each inode it changes (after
 * the checks, never in a dry run): a checkpoint being taken keeps the
 * inode's state at its cut (checkpoint.h, step 3). */
static void cow(struct br_fs *fs, struct br_inode *in)
{
	if (fs->ckpt)
		br_ckpt_cow(fs, in);
}

/* Names, xattrs and targets gained (n > 0) or lost: the variable part
 * of the next blob (br_map.var_bytes). */
static void var_add(struct br_fs *fs, int64_t n)
{
	atomic_fetch_add_explicit(&fs->map.var_bytes, n, memory_order_relaxed);
}

static void inode_free(struct br_fs *fs, struct br_inode *in)
{
	if (fs->ckpt)
		br_ckpt_inode_gone(fs, in);
	/* Its data dies with the record that took its last name (or a
	 * later one about it): in->pos is at least that record's position,
	 * the one a segment it frees must wait for (segment.h, "Reuse").
	 * Freed outside fs_apply too (the last forget). */
	if (fs->segs && in->pos > fs->segs->apply_pos)
		fs->segs->apply_pos = in->pos;
	br_map_inode_free(&fs->map, in);
}

void fs_inode_maybe_free(struct br_fs *fs, struct br_inode *in)
{
	if (in->ino == BR_ROOT_INO || in->nlink || in->nlookup ||
	    __atomic_load_n(&in->pins, __ATOMIC_ACQUIRE))
		return;
	inode_free(fs, in);
}

/* The inode lost a name: directories lose both of theirs at once. */
static void drop_name(struct br_fs *fs, struct br_inode *parent,
		      struct br_inode *in, struct timespec t, uint64_t pos)
{
	if (S_ISDIR(in->mode)) {
		in->nlink = 0;
		parent->nlink--;
	} else {
		in->nlink--;
	}
	touch(in, t, pos, false);
	if (in->nlink == 0) {
		in->attr_dirty = false;
		fs_inode_maybe_free(fs, in);
	}
}

static int apply_create(struct br_fs *fs, const struct br_rec_create *r,
			uint32_t len, const struct fs_apply *ax)
{
	uint64_t ino = br_le64_get(r->h.ino), pino = br_le64_get(r->parent);
	uint32_t nl = br_le16_get(r->name_len), tl = br_le32_get(r->target_len);
	uint32_t mode = br_le32_get(r->attr.mode);
	const char *name = (const char *)(r + 1), *target = name + nl;
	struct br_inode *parent = NULL, *in;
	char *tcopy = NULL;
	int err;

	if (len < sizeof(*r) || len - sizeof(*r) < (uint64_t)nl + tl ||
	    !type_ok(mode) || ino == 0 || br_map_inode_find(&fs->map, ino))
		return CORRUPT;
	if (S_ISLNK(mode) != (tl > 0) || tl >= 4096)
		return CORRUPT;
	if (pino == 0) {
		if (ino != BR_ROOT_INO || !S_ISDIR(mode) || nl)
			return CORRUPT;
	} else {
		parent = live_dir(fs, pino);
		if (!parent || !name_ok(name, nl) ||
		    br_dir_find(&parent->dir, name, nl))
			return CORRUPT;
	}
	if (ax->dry)
		return 0;
	if (parent)
		cow(fs, parent);
	if (tl) {
		tcopy = malloc(tl + 1);
		if (!tcopy)
			return -ENOMEM;
		memcpy(tcopy, target, tl);
		tcopy[tl] = 0;
	}
	err = br_map_inode_new(&fs->map, ino, mode, &in);
	if (err) {
		free(tcopy);
		return err;
	}
	attr_get(in, &r->attr);
	in->target = tcopy;
	if (tl)
		var_add(fs, br_var_len(tl));
	in->size = S_ISLNK(mode) ? tl : 0;
	in->nlink = S_ISDIR(mode) ? 2 : 1;
	in->parent = pino ? pino : BR_ROOT_INO;
	in->pos = ax->pos;
	if (parent) {
		err = br_dir_add(&parent->dir, name, nl, ino, mode, NULL);
		if (err) {
			inode_free(fs, in);
			return err;
		}
		var_add(fs, br_var_len(nl));
		if (S_ISDIR(mode))
			parent->nlink++;
		touch(parent, in->ctime, ax->pos, true);
	}
	return 0;
}

static int apply_link(struct br_fs *fs, const struct br_rec_link *r,
		      uint32_t len, const struct fs_apply *ax, bool unlink)
{
	uint64_t ino = br_le64_get(r->h.ino);
	uint32_t nl = br_le16_get(r->name_len);
	const char *name = (const char *)(r + 1);
	struct br_inode *parent = live_dir(fs, br_le64_get(r->parent));
	struct br_inode *in = br_map_inode_find(&fs->map, ino);
	struct timespec t = fs_time_get(&r->time);
	struct br_dirent *de;
	int err;

	if (len < sizeof(*r) || len - sizeof(*r) < nl || !parent || !in ||
	    !name_ok(name, nl))
		return CORRUPT;
	de = br_dir_find(&parent->dir, name, nl);
	if (unlink) {
		if (!de || de->ino != ino)
			return CORRUPT;
		if (S_ISDIR(in->mode) && in->dir.live)
			return CORRUPT;
		if (ax->dry)
			return 0;
		cow(fs, parent);
		cow(fs, in);
		br_dir_remove(&parent->dir, de);
		var_add(fs, -br_var_len(nl));
		touch(parent, t, ax->pos, true);
		drop_name(fs, parent, in, t, ax->pos);
		return 0;
	}
	if (de || S_ISDIR(in->mode) || in->nlink == 0)
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, parent);
	cow(fs, in);
	err = br_dir_add(&parent->dir, name, nl, ino, in->mode, NULL);
	if (err)
		return err;
	var_add(fs, br_var_len(nl));
	in->nlink++;
	touch(in, t, ax->pos, false);
	touch(parent, t, ax->pos, true);
	return 0;
}

/* Is `anc` the directory `ino` or one of its ancestors? */
static bool is_ancestor(struct br_fs *fs, uint64_t anc, uint64_t ino)
{
	for (unsigned depth = 0; depth < 1u << 20; depth++) {
		struct br_inode *d;

		if (ino == anc)
			return true;
		if (ino == BR_ROOT_INO)
			return false;
		d = br_map_inode_find(&fs->map, ino);
		if (!d)
			return false;
		ino = d->parent;
	}
	return true;	/* a cycle: refuse as if it were one */
}

static int apply_rename(struct br_fs *fs, const struct br_rec_rename *r,
			uint32_t len, const struct fs_apply *ax)
{
	uint64_t ino = br_le64_get(r->h.ino);
	uint32_t ol = br_le16_get(r->old_len), nl = br_le16_get(r->new_len);
	uint32_t flags = br_le32_get(r->flags);
	const char *oname = (const char *)(r + 1), *nname = oname + ol;
	struct br_inode *op = live_dir(fs, br_le64_get(r->old_parent));
	struct br_inode *np = live_dir(fs, br_le64_get(r->new_parent));
	struct br_inode *in = br_map_inode_find(&fs->map, ino), *victim = NULL;
	struct timespec t = fs_time_get(&r->time);
	struct br_dirent *ode, *nde;
	int err;

	if (len < sizeof(*r) || len - sizeof(*r) < (uint64_t)ol + nl ||
	    !op || !np || !in || !name_ok(oname, ol) || !name_ok(nname, nl) ||
	    (flags & ~(BR_RENAME_NOREPLACE | BR_RENAME_EXCHANGE)) ||
	    flags == (BR_RENAME_NOREPLACE | BR_RENAME_EXCHANGE))
		return CORRUPT;
	ode = br_dir_find(&op->dir, oname, ol);
	nde = br_dir_find(&np->dir, nname, nl);
	if (!ode || ode->ino != ino)
		return CORRUPT;
	if (nde) {
		victim = br_map_inode_find(&fs->map, nde->ino);
		if (!victim || nde == ode || victim == in)
			return CORRUPT;	/* no-ops are never logged */
	}
	if (flags & BR_RENAME_EXCHANGE) {
		if (!victim)
			return CORRUPT;
		if (S_ISDIR(in->mode) && is_ancestor(fs, ino, np->ino))
			return CORRUPT;
		if (S_ISDIR(victim->mode) && is_ancestor(fs, victim->ino, op->ino))
			return CORRUPT;
		if (ax->dry)
			return 0;
		cow(fs, op);
		cow(fs, np);
		cow(fs, in);
		cow(fs, victim);
		ode->ino = victim->ino;
		ode->type = victim->mode & S_IFMT;
		nde->ino = ino;
		nde->type = in->mode & S_IFMT;
		if (op != np) {
			if (S_ISDIR(in->mode)) {
				op->nlink--;
				np->nlink++;
			}
			if (S_ISDIR(victim->mode)) {
				np->nlink--;
				op->nlink++;
			}
		}
		if (S_ISDIR(in->mode))
			in->parent = np->ino;
		if (S_ISDIR(victim->mode))
			victim->parent = op->ino;
		touch(in, t, ax->pos, false);
		touch(victim, t, ax->pos, false);
		touch(op, t, ax->pos, true);
		touch(np, t, ax->pos, true);
		return 0;
	}
	if (victim) {
		if (flags & BR_RENAME_NOREPLACE)
			return CORRUPT;
		if (S_ISDIR(in->mode) != S_ISDIR(victim->mode))
			return CORRUPT;
		if (S_ISDIR(victim->mode) && victim->dir.live)
			return CORRUPT;
	}
	if (S_ISDIR(in->mode) && is_ancestor(fs, ino, np->ino))
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, op);
	cow(fs, np);
	cow(fs, in);
	if (victim) {
		cow(fs, victim);
		/* Reuse the victim's entry: no allocation can fail, and the
		 * replaced name keeps its readdir position. */
		br_dir_remove(&op->dir, ode);
		var_add(fs, -br_var_len(ol));
		nde->ino = ino;
		nde->type = in->mode & S_IFMT;
		drop_name(fs, np, victim, t, ax->pos);
	} else {
		err = br_dir_add(&np->dir, nname, nl, ino, in->mode, NULL);
		if (err)
			return err;
		br_dir_remove(&op->dir, ode);
		var_add(fs, br_var_len(nl) - br_var_len(ol));
	}
	if (S_ISDIR(in->mode) && op != np) {
		op->nlink--;
		np->nlink++;
		in->parent = np->ino;
	}
	touch(in, t, ax->pos, false);
	touch(op, t, ax->pos, true);
	touch(np, t, ax->pos, true);
	return 0;
}

static int apply_inode(struct br_fs *fs, const struct br_rec_inode *r,
		       uint32_t len, const struct fs_apply *ax)
{
	struct br_inode *in = br_map_inode_find(&fs->map, br_le64_get(r->h.ino));
	uint64_t size = br_le64_get(r->attr.size);
	int err;

	if (len < sizeof(*r) || size > BR_MAX_FILE_SIZE)
		return CORRUPT;
	if (!in)
		return 0;	/* deleted since */
	if ((br_le32_get(r->attr.mode) & S_IFMT) != (in->mode & S_IFMT))
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, in);
	if (S_ISREG(in->mode) && size != in->size) {
		if (size < in->size) {
			err = br_extmap_punch(&in->ext, size, UINT64_MAX);
			if (err)
				return err;
		}
		in->size = size;
	}
	attr_get(in, &r->attr);
	in->attr_dirty = false;
	if (ax->pos > in->pos)
		in->pos = ax->pos;
	return 0;
}

static int apply_punch(struct br_fs *fs, const struct br_rec_punch *r,
		       uint32_t len, const struct fs_apply *ax)
{
	struct br_inode *in = br_map_inode_find(&fs->map, br_le64_get(r->h.ino));
	int err;

	if (len < sizeof(*r))
		return CORRUPT;
	if (!in)
		return 0;
	if (!S_ISREG(in->mode))
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, in);
	err = br_extmap_punch(&in->ext, br_le64_get(r->off), br_le64_get(r->len));
	if (err)
		return err;
	touch(in, fs_time_get(&r->time), ax->pos, true);
	return 0;
}

static int apply_xattr(struct br_fs *fs, const struct br_rec_xattr *r,
		       uint32_t len, const struct fs_apply *ax, bool set)
{
	struct br_inode *in = br_map_inode_find(&fs->map, br_le64_get(r->h.ino));
	uint32_t nl = br_le16_get(r->name_len), vl = br_le32_get(r->value_len);
	const char *p = (const char *)(r + 1);
	char name[BR_NAME_MAX + 1];
	struct br_xattr *old;
	int64_t was;
	int err;

	if (len < sizeof(*r) || len - sizeof(*r) < (uint64_t)nl + vl ||
	    nl == 0 || nl > BR_NAME_MAX || memchr(p, 0, nl) ||
	    vl > 65536 || (!set && vl))
		return CORRUPT;
	if (!in)
		return 0;
	memcpy(name, p, nl);
	name[nl] = 0;
	if (!set && !br_xattr_find(&in->xattrs, name))
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, in);
	old = br_xattr_find(&in->xattrs, name);
	was = old ? BR_VAR_XATTR(old->namelen, old->size) : 0;
	if (set)
		err = br_xattr_set(&in->xattrs, name, p + nl, vl, 0);
	else
		err = br_xattr_remove(&in->xattrs, name);
	if (err)
		return err;
	var_add(fs, (set ? BR_VAR_XATTR(nl, vl) : 0) - was);
	touch(in, fs_time_get(&r->time), ax->pos, false);
	return 0;
}

static int apply_data(struct br_fs *fs, const struct br_rec_data *r,
		      uint32_t len, const struct fs_apply *ax)
{
	struct br_inode *in = br_map_inode_find(&fs->map, br_le64_get(r->h.ino));
	uint64_t off = br_le64_get(r->off), n;
	int err;

	if (len < sizeof(*r))
		return CORRUPT;
	n = len - sizeof(*r);
	/* the filesystem never writes past the largest file size */
	if (off > BR_MAX_FILE_SIZE || n > BR_MAX_FILE_SIZE - off)
		return CORRUPT;
	if (!in)
		return 0;
	if (!S_ISREG(in->mode))
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, in);
	if (n == 0)
		return 0;
	err = br_extmap_insert(&in->ext, off, n, &ax->data);
	if (err)
		return err;
	if (off + n > in->size)
		in->size = off + n;
	if (ax->pos > in->pos)
		in->pos = ax->pos;
	return 0;
}

/* One of the cleaner's moves (format.h, BR_REC_RELOC): bounded like a
 * data record (a copy fits in one log buffer). */
static bool reloc_ok(const struct br_reloc *m)
{
	return m->len && m->len <= BR_BUF_SIZE_MAX &&
	       m->off <= BR_MAX_FILE_SIZE &&
	       m->len <= BR_MAX_FILE_SIZE - m->off &&
	       m->old_addr <= UINT64_MAX - m->len &&
	       m->new_addr <= UINT64_MAX - m->len;
}

/*
 * Walk `count` moves: `one`, or the entries packed at p (avail bytes,
 * format.h BR_REC_RELOCS).  Without ext, check them (CORRUPT unless every
 * entry decodes, is in bounds and the entries fill the record); with it,
 * apply them: the pieces of each move still durable at their old address
 * go to the copy.
 */
static int walk_moves(const struct br_reloc *one, const uint8_t *p,
		      size_t avail, uint32_t count, struct br_extmap *ext)
{
	struct br_reloc end = { 0 }, m;

	for (uint32_t i = 0; i < count; i++) {
		if (one) {
			m = *one;
		} else {
			unsigned k = br_reloc_get(p, avail, &end, &m);

			if (!k)
				return CORRUPT;
			p += k;
			avail -= k;
		}
		if (!ext && !reloc_ok(&m))
			return CORRUPT;
		if (ext && br_extmap_relocate(ext, m.off, m.len, m.old_addr,
					      m.new_addr, NULL))
			return -ENOMEM;
	}
	return !ext && avail ? CORRUPT : 0;
}

/* The cleaner's moves of inode ino's data, all checked before any is
 * applied. */
static int apply_moves(struct br_fs *fs, uint64_t ino, uint64_t feature,
		       const struct br_reloc *one, const uint8_t *p,
		       size_t avail, uint32_t count, const struct fs_apply *ax)
{
	struct br_inode *in = br_map_inode_find(&fs->map, ino);
	int err;

	if (!(fs->sb.feat_incompat & feature) || !count)
		return CORRUPT;
	err = walk_moves(one, p, avail, count, NULL);
	if (err)
		return err;
	if (!in)
		return 0;	/* deleted since: its data died with it */
	if (!S_ISREG(in->mode))
		return CORRUPT;
	if (ax->dry)
		return 0;
	cow(fs, in);
	return walk_moves(one, p, avail, count, &in->ext);
}

static int apply_reloc(struct br_fs *fs, const struct br_rec_reloc *r,
		       uint32_t len, const struct fs_apply *ax)
{
	struct br_reloc m;

	if (len < sizeof(*r))
		return CORRUPT;
	m.off = br_le64_get(r->off);
	m.len = br_le64_get(r->len);
	m.old_addr = br_le64_get(r->old_addr);
	m.new_addr = br_le64_get(r->new_addr);
	return apply_moves(fs, br_le64_get(r->h.ino), BR_FEATURE_INCOMPAT_RELOC,
			   &m, NULL, 0, 1, ax);
}

static int apply_relocs(struct br_fs *fs, const struct br_rec_relocs *r,
			uint32_t len, const struct fs_apply *ax)
{
	if (len < sizeof(*r))
		return CORRUPT;
	return apply_moves(fs, br_le64_get(r->h.ino),
			   BR_FEATURE_INCOMPAT_RELOCS, NULL,
			   (const uint8_t *)(r + 1), len - sizeof(*r),
			   br_le32_get(r->count), ax);
}

int fs_apply(struct br_fs *fs, const struct br_rec_header *h, uint32_t len,
	     const struct fs_apply *ax)
{
	/* Durable bytes this record removes from a segment die at its
	 * position (0 in replay: every replayed record is durable); the
	 * segment table takes it from here (segment.h, "Reuse").  map_lock
	 * is held for writing, which also protects apply_pos. */
	if (!ax->dry && fs->segs)
		fs->segs->apply_pos = ax->pos;
	switch (br_le16_get(h->type)) {
	case BR_REC_PAD:
		return 0;
	case BR_REC_DATA:
		return apply_data(fs, (const void *)h, len, ax);
	case BR_REC_INODE:
		return apply_inode(fs, (const void *)h, len, ax);
	case BR_REC_CREATE:
		return apply_create(fs, (const void *)h, len, ax);
	case BR_REC_LINK:
		return apply_link(fs, (const void *)h, len, ax, false);
	case BR_REC_UNLINK:
		return apply_link(fs, (const void *)h, len, ax, true);
	case BR_REC_RENAME:
		return apply_rename(fs, (const void *)h, len, ax);
	case BR_REC_PUNCH:
		return apply_punch(fs, (const void *)h, len, ax);
	case BR_REC_XATTR_SET:
		return apply_xattr(fs, (const void *)h, len, ax, true);
	case BR_REC_XATTR_DEL:
		return apply_xattr(fs, (const void *)h, len, ax, false);
	case BR_REC_RELOC:
		return apply_reloc(fs, (const void *)h, len, ax);
	case BR_REC_RELOCS:
		return apply_relocs(fs, (const void *)h, len, ax);
	case BR_REC_CKPT_CUT:
	case BR_REC_CKPT_HEAD:
	case BR_REC_CKPT_DATA:
		return 0;	/* checkpoints change nothing (core/checkpoint) */
	}
	return CORRUPT;
}
