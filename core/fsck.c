/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Filesystem check: see fsck.h.  The tree is loaded with br_fs_open (the
 * mount code), read-only for the check; only when something needs repair
 * is it opened read-write (locked, like a mount) and checked again, this
 * time repairing, and a checkpoint records the result.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "fsck.h"
#include "util.h"
#include "segment.h"
#include "fsys_int.h"

struct ck {
	const struct br_fsck_opts *o;
	struct br_fsck_result *r;
	bool repair;
	/* data record payloads in the log, sorted: [a, b) */
	struct range { uint64_t a, b; } *rv;
	size_t nr, capr;
	uint64_t scanned, total;
};

static void say(struct ck *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct ck *c, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (level == 1)
		c->r->errors++;
	if (level == 2) {
		c->r->errors++;
		c->r->fixed++;
	}
	if (level == 0 && !c->o->verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->o->report)
		c->o->report(c->o->ctx, level, msg);
}

static int read_block(int fd, uint64_t off, uint8_t *b)
{
	ssize_t n = pread(fd, b, BR_BLOCK_SIZE, (off_t)off);

	if (n < 0)
		return -errno;
	return n == BR_BLOCK_SIZE ? 0 : -EIO;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* 1 + 2: superblocks and slots.  *sb gets the superblock to use. */
static int check_super(struct ck *c, int fd, struct br_super *sb)
{
	static uint8_t blk[2][BR_BLOCK_SIZE] __attribute__((aligned(4096)));
	struct br_super s[2];
	uint64_t size, boff;
	int err, e[2];

	err = br_super_device_size(fd, &size);
	if (err)
		return err;
	boff = br_super_backup_off(size);
	e[0] = read_block(fd, BR_SUPER_OFF, blk[0]);
	if (!e[0])
		e[0] = br_super_decode(blk[0], &s[0]);
	e[1] = boff ? read_block(fd, boff, blk[1]) : -EIO;
	if (!e[1])
		e[1] = br_super_decode(blk[1], &s[1]);
	if (e[0] && e[1]) {
		say(c, 1, "no valid superblock (primary: %s, backup: %s)",
		    strerror(-e[0]), strerror(-e[1]));
		return BR_ERR_CORRUPT;
	}
	*sb = e[0] ? s[1] : s[0];
	if (e[0] || e[1] || memcmp(blk[0], blk[1], BR_SUPER_SIZE)) {
		const char *what = e[0] ? "the primary superblock is damaged" :
				   e[1] ? "the backup superblock is damaged" :
				   "the primary and backup superblocks differ";

		/* br_super_write: primary, sync, backup, sync; a crash in
		 * between leaves one valid copy, and the next run repairs
		 * the other. */
		if (e[0] == BR_ERR_UNSUPPORTED || e[1] == BR_ERR_UNSUPPORTED)
			say(c, 1, "%s: a copy is of a newer format or has unknown features; not rewritten", what);
		else if (c->repair && !br_super_write(fd, sb))
			say(c, 2, "%s: rewrote both from the %s", what,
			    e[0] ? "backup" : "primary");
		else
			say(c, 1, "%s%s", what, c->repair ? " (rewriting failed)" : "");
	} else {
		say(c, 0, "superblock and backup agree");
	}
	/* Slots.  A damaged slot next to a valid one is harmless (the reader
	 * takes the valid one) but it is an error all the same: a repair
	 * clears it, which is what the reader already makes of it, and the
	 * next checkpoint writes that slot.  With no valid slot at all the
	 * log cannot be loaded: nothing to repair here. */
	{
		struct br_slot sl[2];
		int se[2];
		bool zero[2];

		for (unsigned w = 0; w < 2; w++) {
			err = read_block(fd, BR_SLOT_OFF(w), blk[0]);
			if (err)
				return err;
			zero[w] = all_zero(blk[0], BR_BLOCK_SIZE);
			se[w] = zero[w] ? BR_ERR_CORRUPT : br_slot_decode(sb, blk[0], &sl[w]);
		}
		for (unsigned w = 0; w < 2; w++) {
			if (zero[w]) {
				say(c, 0, "checkpoint slot %u: unused", w);
			} else if (!se[w]) {
				say(c, 0, "checkpoint slot %u: generation %llu, roll-forward from %llu (seq %llu)",
				    w, (unsigned long long)sl[w].seq,
				    (unsigned long long)sl[w].roll_addr,
				    (unsigned long long)sl[w].roll_seq);
			} else if (se[w ^ 1]) {
				say(c, 1, "checkpoint slot %u is damaged and slot %u is not valid either: the log cannot be loaded",
				    w, w ^ 1);
			} else if (c->repair && !br_slot_clear(fd, w)) {
				say(c, 2, "checkpoint slot %u is damaged (slot %u, generation %llu, is the one used): cleared",
				    w, w ^ 1, (unsigned long long)sl[w ^ 1].seq);
			} else {
				/* What a power cut during a slot write
				 * leaves; the reader ignores it: a warning,
				 * not an error (-y clears it). */
				say(c, 3, "checkpoint slot %u is damaged (slot %u, generation %llu, is the one used)",
				    w, w ^ 1, (unsigned long long)sl[w ^ 1].seq);
			}
		}
	}
	return 0;
}

/* The bytes [a, b) of the log hold file data. */
static int add_range(struct ck *c, uint64_t a, uint64_t b)
{
	if (br_grow(&c->rv, &c->capr, c->nr + 1, sizeof(*c->rv), 1024))
		return -ENOMEM;
	c->rv[c->nr].a = a;
	c->rv[c->nr].b = b;
	c->nr++;
	return 0;
}

/* 3: the whole chain from the start of the log, as mkfs left it. */
static int scan_rec(void *ctx, const struct br_rec_header *h, uint32_t len,
		    uint64_t addr)
{
	struct ck *c = ctx;
	struct br_vec_it it;
	uint64_t off, n;
	uint32_t at;
	int err = 0;

	c->scanned += br_rec_padded(len);
	if (br_le16_get(h->type) == BR_REC_DATA &&
	    len > sizeof(struct br_rec_data))
		err = add_range(c, addr + sizeof(struct br_rec_data),
				addr + len);
	/* a vector that does not hold gives no data: extents into it are
	 * then reported as pointing outside the log's data */
	if (br_le16_get(h->type) == BR_REC_DATA_VEC &&
	    !br_vec_begin(&it, h, len))
		while (!err && br_vec_next(&it, &off, &n, &at) > 0)
			err = add_range(c, addr + at, addr + at + n);
	if (c->o->progress && (c->r->buffers & 63) == 0)
		c->o->progress(c->o->ctx, c->scanned, c->total);
	return err;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->a < y->a ? -1 : x->a > y->a;
}

/*
 * 3: every buffer still on disk, segment by segment.  Segments are reused
 * once a checkpoint covers them, so the chain from the start of the log
 * (seq 1) ends at the first reused segment while extents may point into
 * any segment.  Each segment holds buffers back to back from its start;
 * the walk of a segment stops at the first block that is not a valid
 * buffer of this filesystem (magic, fsid, span, CRC, record framing) or
 * whose seq is not above the one before (stale bytes behind a reuse).
 */
static int check_log(struct ck *c, int fd, const struct br_super *sb)
{
	uint64_t fsid = br_super_fsid(sb), records = 0;
	uint8_t *buf = malloc(BR_BUF_SIZE_MAX);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	c->total = sb->log_end - sb->log_start;
	for (uint64_t seg = sb->log_start; seg < sb->log_end && !err; seg += sb->seg_size) {
		uint64_t addr = seg, seg_end = seg + sb->seg_size, last = 0;

		while (addr + BR_BLOCK_SIZE <= seg_end) {
			const struct br_buf_header *h = (const void *)buf;
			uint32_t span, len;
			ssize_t n = pread(fd, buf, BR_BLOCK_SIZE, (off_t)addr);

			if (n != BR_BLOCK_SIZE)
				break;
			span = br_le32_get(h->span);
			len = br_le32_get(h->len);
			if (br_le32_get(h->magic) != BR_BUF_MAGIC ||
			    br_le64_get(h->fsid) != fsid ||
			    br_le64_get(h->seq) <= last || span == 0 ||
			    span % BR_BLOCK_SIZE || span > BR_BUF_SIZE_MAX ||
			    addr + span > seg_end || len > span - sizeof(*h))
				break;
			if (span > BR_BLOCK_SIZE &&
			    pread(fd, buf + BR_BLOCK_SIZE, span - BR_BLOCK_SIZE,
				  (off_t)(addr + BR_BLOCK_SIZE)) != (ssize_t)(span - BR_BLOCK_SIZE))
				break;
			if (br_crc32c(0, buf + 4, sizeof(*h) - 4 + len) != br_le32_get(h->crc))
				break;
			{
				uint32_t off = 0;

				while (off < len) {
					const struct br_rec_header *r =
						(const void *)(buf + sizeof(*h) + off);
					uint32_t rl;

					if (len - off < sizeof(*r))
						break;
					rl = br_le32_get(r->len);
					if (rl < sizeof(*r) || rl > len - off ||
					    br_rec_padded(rl) > len - off)
						break;
					err = scan_rec(c, r, rl, addr + sizeof(*h) + off);
					if (err)
						break;
					records++;
					off += br_rec_padded(rl);
				}
				if (err)
					break;
			}
			c->r->buffers++;
			last = br_le64_get(h->seq);
			addr += span;
		}
		if (c->o->progress)
			c->o->progress(c->o->ctx, seg_end - sb->log_start, c->total);
	}
	free(buf);
	if (err)
		return err;
	c->r->log_bytes = c->scanned;
	if (c->nr)
		qsort(c->rv, c->nr, sizeof(*c->rv), cmp_range);
	say(c, 0, "log: %llu buffers holding %llu records in its segments",
	    (unsigned long long)c->r->buffers, (unsigned long long)records);
	return 0;
}

static bool in_log_data(const struct ck *c, uint64_t a, uint64_t len)
{
	size_t lo = 0, hi = c->nr;

	while (lo < hi) {	/* last range with .a <= a */
		size_t mid = (lo + hi) / 2;

		if (c->rv[mid].a <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a + len <= c->rv[lo - 1].b;
}

/* 4: the tree. */
struct cnt {
	UT_hash_handle hh;
	uint64_t ino;
	uint32_t names, subdirs, reached;
};

static struct cnt *cnt_get(struct cnt **h, uint64_t ino)
{
	struct cnt *x;

	HASH_FIND(hh, *h, &ino, sizeof(ino), x);
	return x;
}

/* /lost+found, made if missing (and then counted as checked). */
static int lost_found(struct br_fs *fs, struct cnt **h, uint64_t *out)
{
	const struct br_cred cr = { 0, 0 };
	struct stat st;
	int err = br_fs_lookup(fs, BR_ROOT_INO, "lost+found", &st);

	if (err == -ENOENT) {
		struct cnt *x = calloc(1, sizeof(*x));

		if (!x)
			return -ENOMEM;
		err = br_fs_mkdir(fs, BR_ROOT_INO, "lost+found", 0700, &cr, &st);
		if (err) {
			free(x);
			return err;
		}
		x->ino = st.st_ino;
		x->names = x->reached = 1;
		HASH_ADD(hh, *h, ino, sizeof(x->ino), x);
		cnt_get(h, BR_ROOT_INO)->subdirs++;
	}
	if (err)
		return err;
	br_fs_forget(fs, st.st_ino, 1);
	*out = st.st_ino;
	return 0;
}

static void check_extents(struct ck *c, struct br_inode *in,
			  bool *changed)
{
	struct br_chunk *ch, *ct;
	uint64_t end = 0;

	HASH_ITER(hh, in->ext.chunks, ch, ct) {
		for (uint32_t i = 0; i < ch->n; i++) {
			struct br_extent e = ch->ext[i];

			if (e.off + e.len > end)
				end = e.off + e.len;
			if (e.kind != BR_EXT_DURABLE || in_log_data(c, e.v, e.len))
				continue;
			if (c->repair && !br_extmap_punch(&in->ext, e.off, e.len)) {
				say(c, 2, "inode %llu: data at file offset %llu points outside the log's data (log byte %llu): dropped",
				    (unsigned long long)in->ino,
				    (unsigned long long)e.off,
				    (unsigned long long)e.v);
				*changed = true;
				return;	/* the chunk changed under us */
			}
			say(c, 1, "inode %llu: data at file offset %llu points outside the log's data (log byte %llu)",
			    (unsigned long long)in->ino, (unsigned long long)e.off,
			    (unsigned long long)e.v);
		}
	}
	if (end > in->size) {
		if (c->repair && !br_extmap_punch(&in->ext, in->size, UINT64_MAX)) {
			say(c, 2, "inode %llu: data beyond its size %llu: dropped",
			    (unsigned long long)in->ino,
			    (unsigned long long)in->size);
			*changed = true;
		} else {
			say(c, 1, "inode %llu: data up to %llu beyond its size %llu",
			    (unsigned long long)in->ino, (unsigned long long)end,
			    (unsigned long long)in->size);
		}
	}
}

static int check_tree(struct ck *c, struct br_fs *fs)
{
	struct cnt *h = NULL, *x, *xt;
	struct br_inode *in, *tmp, *root;
	uint64_t *queue = NULL, lf = 0;
	size_t qn = 0, qh = 0;
	bool changed = false;
	int err = 0;

	c->r->inodes = c->r->dirs = c->r->files = 0;
	HASH_ITER(hh, fs->map.inodes, in, tmp) {
		x = calloc(1, sizeof(*x));
		if (!x) {
			err = -ENOMEM;
			goto out;
		}
		x->ino = in->ino;
		HASH_ADD(hh, h, ino, sizeof(x->ino), x);
		c->r->inodes++;
		if (S_ISDIR(in->mode))
			c->r->dirs++;
		else if (S_ISREG(in->mode))
			c->r->files++;
	}
	/* names and subdirectories */
	HASH_ITER(hh, fs->map.inodes, in, tmp) {
		if (!S_ISDIR(in->mode))
			continue;
		for (size_t i = 0; i < in->dir.n; i++) {
			struct br_dirent *de = in->dir.order[i].d;
			struct br_inode *t;

			if (!de)
				continue;
			t = br_map_inode_find(&fs->map, de->ino);
			if (!t) {
				if (c->repair) {
					say(c, 2, "directory %llu: entry '%s' names missing inode %llu: removed",
					    (unsigned long long)in->ino, de->name,
					    (unsigned long long)de->ino);
					br_dir_remove(&in->dir, de);
					changed = true;
				} else {
					say(c, 1, "directory %llu: entry '%s' names missing inode %llu",
					    (unsigned long long)in->ino, de->name,
					    (unsigned long long)de->ino);
				}
				continue;
			}
			cnt_get(&h, t->ino)->names++;
			if (S_ISDIR(t->mode)) {
				cnt_get(&h, in->ino)->subdirs++;
				if (t->parent != in->ino) {
					say(c, c->repair ? 2 : 1, "directory %llu: parent is %llu but its name is in %llu%s",
					    (unsigned long long)t->ino,
					    (unsigned long long)t->parent,
					    (unsigned long long)in->ino,
					    c->repair ? ": corrected" : "");
					if (c->repair) {
						t->parent = in->ino;
						changed = true;
					}
				}
			}
		}
	}
	/* reachability: every directory once, from the root */
	root = br_map_inode_find(&fs->map, BR_ROOT_INO);
	if (!root && c->r->inodes == 0) {
		/* Nothing in the log yet (mkfs, or a power cut before the
		 * first buffer): the first mount creates the root. */
		say(c, 0, "empty filesystem: the next mount creates the root directory");
		goto out;
	}
	if (!root || !S_ISDIR(root->mode)) {
		say(c, 1, "the root directory is missing");
		goto out;
	}
	queue = malloc((c->r->inodes + 1) * sizeof(*queue));
	if (!queue) {
		err = -ENOMEM;
		goto out;
	}
	queue[qn++] = BR_ROOT_INO;
	cnt_get(&h, BR_ROOT_INO)->reached = 1;
	while (qh < qn) {
		struct br_inode *d = br_map_inode_find(&fs->map, queue[qh++]);

		for (size_t i = 0; d && i < d->dir.n; i++) {
			struct br_dirent *de = d->dir.order[i].d;
			struct br_inode *t;
			struct cnt *tc;

			if (!de || !(t = br_map_inode_find(&fs->map, de->ino)))
				continue;
			tc = cnt_get(&h, t->ino);
			if (tc->reached++ && S_ISDIR(t->mode)) {
				say(c, 1, "directory %llu is reached twice (a cycle or a directory hard link), second time as '%s' in %llu",
				    (unsigned long long)t->ino, de->name,
				    (unsigned long long)d->ino);
				continue;
			}
			if (S_ISDIR(t->mode) && tc->reached == 1 && qn <= c->r->inodes)
				queue[qn++] = t->ino;
		}
	}
	/* orphans, link counts, extents */
	HASH_ITER(hh, fs->map.inodes, in, tmp) {
		uint32_t want;

		x = cnt_get(&h, in->ino);
		if (!x)
			continue;	/* lost+found, made by this repair */
		if (in->ino != BR_ROOT_INO && !x->reached) {
			if (x->names == 0 && !S_ISDIR(in->mode) && c->repair &&
			    (lf || !lost_found(fs, &h, &lf))) {
				char name[32];
				struct stat st;

				snprintf(name, sizeof(name), "#%llu",
					 (unsigned long long)in->ino);
				if (!br_fs_link(fs, in->ino, lf, name, &st)) {
					br_fs_forget(fs, in->ino, 1);
					in->nlink = 1;
					say(c, 2, "inode %llu has no name: linked as /lost+found/%s",
					    (unsigned long long)in->ino, name);
					changed = true;
					continue;
				}
			}
			say(c, 1, "inode %llu (%s) is not reachable from the root",
			    (unsigned long long)in->ino,
			    S_ISDIR(in->mode) ? "directory" : "file");
			continue;
		}
		want = S_ISDIR(in->mode) ? 2 + x->subdirs : x->names;
		if (in->nlink != want) {
			if (c->repair) {
				say(c, 2, "inode %llu: link count %u, should be %u: corrected",
				    (unsigned long long)in->ino, in->nlink, want);
				in->nlink = want;
				changed = true;
			} else {
				say(c, 1, "inode %llu: link count %u, should be %u",
				    (unsigned long long)in->ino, in->nlink, want);
			}
		}
		if (S_ISREG(in->mode))
			check_extents(c, in, &changed);
	}
	{
		struct br_ckpt_stats st;

		br_ckpt_stats(fs, &st);
		/* The newest slot is valid (a torn slot write is not taken
		 * as the newest) but its checkpoint did not load: damage in
		 * the log.  The mount rolled forward from the older one,
		 * which reaches the newest cut, but stops at the first
		 * damaged buffer: what was written after it is gone.  A new
		 * checkpoint takes the damaged slot. */
		if (st.fallback) {
			if (c->repair) {
				say(c, 2, "the newest checkpoint does not load: loaded the older one (generation %llu), anything written after the damaged log buffer is lost; replaced by a new checkpoint",
				    (unsigned long long)st.loaded_gen);
				changed = true;
			} else {
				say(c, 1, "the newest checkpoint does not load: loaded the older one (generation %llu), anything written after the damaged log buffer is lost",
				    (unsigned long long)st.loaded_gen);
			}
		}
		if (st.usage_mismatch) {
			if (c->repair) {
				say(c, 2, "checkpoint %llu: segment usage differs from its extents in %llu segments: recomputed",
				    (unsigned long long)st.loaded_gen,
				    (unsigned long long)st.usage_mismatch);
				changed = true;
			} else {
				say(c, 1, "checkpoint %llu: segment usage differs from its extents in %llu segments",
				    (unsigned long long)st.loaded_gen,
				    (unsigned long long)st.usage_mismatch);
			}
		}
	}
	if (fs->segs) {
		/* The usage table the allocator trusts (kept by the extent
		 * map as it changed, checkpoint load and roll-forward
		 * included) against a recount of the final map. */
		uint64_t n = fs->sb.seg_count, bad = 0;
		uint64_t *kept = calloc(n, sizeof(*kept));
		uint64_t *recount = calloc(n, sizeof(*recount));

		if (kept && recount) {
			br_seg_usage(fs->segs, kept);
			br_ckpt_usage(fs, recount, n);
			for (uint64_t i = 0; i < n; i++)
				bad += kept[i] != recount[i];
			if (bad)
				say(c, 1, "segment usage kept in memory differs from the extents in %llu segments",
				    (unsigned long long)bad);
		}
		free(kept);
		free(recount);
	}
	if (changed) {
		err = br_ckpt_write(fs);
		if (!err)
			say(c, 0, "repairs recorded in a checkpoint");
	}
out:
	HASH_ITER(hh, h, x, xt) {
		HASH_DEL(h, x);
		free(x);
	}
	free(queue);
	return err;
}

static int load_and_check(struct ck *c, const char *image, bool rw)
{
	struct br_fs_options fo = {
		.read_only = !rw,
		.ckpt_bytes = UINT64_MAX, .ckpt_secs = UINT32_MAX,
	};
	struct br_fs *fs = NULL;
	char why[300] = "";
	int err;

	err = br_fs_open(image, &fo, &fs, why, sizeof(why));
	if (err == -EBUSY || err == -ENOMEM || err == -ENOENT || err == -EACCES)
		return err;
	if (err) {
		say(c, 1, "the tree does not load: %s", why);
		return 0;
	}
	if (rw)	/* the check must see no pending write */
		br_fs_syncfs(fs);
	/* No map_lock: nothing else has this fs open (the rw open holds the
	 * image lock, and a read-only one has no store thread), and
	 * br_fs_link / br_fs_mkdir take it themselves. */
	err = check_tree(c, fs);
	{
		int cerr = br_fs_close(fs);

		if (!err)
			err = cerr;
	}
	return err;
}

int br_fsck_run(const char *image, const struct br_fsck_opts *o,
		struct br_fsck_result *r)
{
	struct ck c = { .o = o, .r = r };
	struct br_super sb;
	struct br_fsck_result first;
	int fd, err;

	memset(r, 0, sizeof(*r));
	fd = open(image, (o->repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (o->repair && flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return err;
	}
	c.repair = o->repair;
	err = check_super(&c, fd, &sb);
	if (err == BR_ERR_CORRUPT) {
		close(fd);
		return 0;	/* reported; nothing else can be checked */
	}
	if (!err)
		err = check_log(&c, fd, &sb);
	close(fd);	/* drops our lock before br_fs_open takes its own */
	if (err)
		goto out;
	/* The tree: check read-only; repair only if something is wrong. */
	c.repair = false;
	first = *r;
	err = load_and_check(&c, image, false);
	if (err || !o->repair || r->errors == first.errors)
		goto out;
	*r = first;
	c.repair = true;
	err = load_and_check(&c, image, true);
out:
	free(c.rv);
	return err;
}
