/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The filesystem operations (fsys.h) over the map and the store.
 *
 * Every change follows one pattern, under the lock that orders it (ns_lock
 * for the namespace, the inode's stripe lock for its data and attributes;
 * see struct br_fs for the order):
 *
 *   1. check it against the map (fs_apply dry run, map_lock read) and
 *      build its record;
 *   2. br_store_reserve (no map lock: reserve may wait for a completion,
 *      whose callback takes map_lock) and copy the record in;
 *   3. map_lock write: fs_apply (the same code replay uses);
 *   4. br_store_commit.
 *
 * If step 3 fails (only -ENOMEM can, after a successful check) the record
 * is turned into BR_REC_PAD before the commit, so the log never holds a
 * change the map does not.
 *
 * Data: a write is cut into records of at most max_data bytes; each becomes
 * a pending extent pointing into its ring slot, and the (ino, chunk) pairs
 * are remembered per slot, so on_complete switches exactly those chunks to
 * durable addresses.  A read copies pending bytes from the slot under
 * map_lock (on_complete, which precedes the slot's reuse, needs map_lock
 * for writing) and reads durable bytes with O_DIRECT after dropping it;
 * br_seg_read_begin/end around both keep the segments it saw from being
 * reused until the pread is done (segment.h, "Readers").
 *
 * Times: metadata records carry their time; data records do not, so a
 * write updates mtime/ctime in memory and marks the inode attr_dirty, and
 * the times reach the log in a BR_REC_INODE record at flush (close),
 * fsync, or unmount.  Likewise atime (relatime rule).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cleaner.h"
#include "segment.h"
#include "fsys_int.h"
#include "util.h"

#define MAX_FILE_SIZE BR_MAX_FILE_SIZE
#define MAX_DATA_PER_RECORD (256u << 10)
/* Smallest piece a write is cut to so that it fills the rest of the
 * buffer being filled (br_fs_write). */
#define FILL_MIN (16u << 10)
#define MAX_LINKS 65000u
#define XATTR_VALUE_MAX 65536u

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static struct timespec now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

static pthread_mutex_t *ilock(struct br_fs *fs, uint64_t ino)
{
	/* Fibonacci hashing: the top bits of ino * 2^64/phi */
	return &fs->ilock[(ino * 0x9e3779b97f4a7c15ull) >>
			  (64 - FS_INODE_LOCK_BITS)];
}

static void rdlock(struct br_fs *fs) { pthread_rwlock_rdlock(&fs->map_lock); }
static void wrlock(struct br_fs *fs) { pthread_rwlock_wrlock(&fs->map_lock); }
static void unlock(struct br_fs *fs) { pthread_rwlock_unlock(&fs->map_lock); }

static struct br_inode *find(struct br_fs *fs, uint64_t ino)
{
	return br_map_inode_find(&fs->map, ino);
}

/* map_lock held (read is enough). */
static void pin(struct br_inode *in)
{
	__atomic_add_fetch(&in->pins, 1, __ATOMIC_RELAXED);
}

static void unpin(struct br_fs *fs, struct br_inode *in)
{
	uint64_t ino = in->ino;
	bool doomed;

	rdlock(fs);
	/* acq_rel: pairs with the acquire load in fs_inode_maybe_free, so a
	 * freeing thread sees everything we did to the inode */
	doomed = __atomic_sub_fetch(&in->pins, 1, __ATOMIC_ACQ_REL) == 0 &&
		 in->nlink == 0;
	unlock(fs);
	if (!doomed)
		return;
	wrlock(fs);
	in = find(fs, ino);
	if (in)
		fs_inode_maybe_free(fs, in);
	unlock(fs);
}

/* The mode of a pinned inode read without map_lock (an inode record may
 * change its permission bits meanwhile: apply.c stores it atomically;
 * the type bits never change). */
static uint32_t mode_of(const struct br_inode *in)
{
	return __atomic_load_n(&in->mode, __ATOMIC_RELAXED);
}

/* What an inode record holds of in (map_lock held): copying the whole
 * inode would also read its pin count, which unpin changes under the
 * read lock. */
static struct br_inode attrs_of(const struct br_inode *in)
{
	struct br_inode a = { .ino = in->ino, .mode = in->mode,
			      .uid = in->uid, .gid = in->gid,
			      .nlink = in->nlink, .rdev = in->rdev,
			      .size = in->size, .atime = in->atime,
			      .mtime = in->mtime, .ctime = in->ctime };

	return a;
}

/* Pin a live inode by number: -ENOENT. */
static int get(struct br_fs *fs, uint64_t ino, struct br_inode **out)
{
	struct br_inode *in;

	rdlock(fs);
	in = find(fs, ino);
	if (in)
		pin(in);
	unlock(fs);
	*out = in;
	return in ? 0 : -ENOENT;
}

static void fill_stat(const struct br_inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_blksize = BR_BLOCK_SIZE;
	if (S_ISDIR(in->mode)) {
		st->st_size = BR_BLOCK_SIZE;
		st->st_blocks = BR_BLOCK_SIZE / 512;
	} else {
		st->st_size = (off_t)in->size;
		st->st_blocks = (blkcnt_t)(((in->ext.bytes + BR_BLOCK_SIZE - 1) &
					    ~(uint64_t)(BR_BLOCK_SIZE - 1)) / 512);
	}
	st->st_atim = in->atime;
	st->st_mtim = in->mtime;
	st->st_ctim = in->ctime;
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len > BR_NAME_MAX)
		return -ENAMETOOLONG;
	if (len == 0)
		return -ENOENT;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

/* A live directory for a namespace change: -ENOENT, -ENOTDIR. */
static int get_dir(struct br_fs *fs, uint64_t ino, struct br_inode **out)
{
	struct br_inode *d = find(fs, ino);

	if (!d)
		return -ENOENT;
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	if (d->nlink == 0)
		return -ENOENT;
	*out = d;
	return 0;
}

/*
 * Steps 2-4 of the pattern above for a metadata record `rec` of `len`
 * bytes that passed its dry run.
 */
static int log_record(struct br_fs *fs, const void *rec, uint32_t len,
		      uint64_t *pos)
{
	struct br_resv r;
	struct fs_apply ax = { 0 };
	int err;

	if (!fs->store)
		return -EROFS;	/* opened read-only: nothing is logged */
	err = br_store_reserve(fs->store, len, &r);
	if (err)
		return err;
	memcpy(r.ptr, rec, len);
	ax.pos = r.pos;
	wrlock(fs);
	err = fs_apply(fs, rec, len, &ax);
	unlock(fs);
	if (err)
		((struct br_rec_header *)r.ptr)->type = br_le16_put(BR_REC_PAD);
	br_store_commit(fs->store, &r);
	if (!err && pos)
		*pos = r.pos;
	return err == BR_ERR_CORRUPT ? -EIO : err;
}

/* Dry run under map_lock read; a contradiction here is a caller error
 * the checks before should have caught: report it as EIO. */
static int check_record(struct br_fs *fs, const void *rec, uint32_t len)
{
	struct fs_apply ax = { .dry = true };
	int err = fs_apply(fs, rec, len, &ax);

	return err == BR_ERR_CORRUPT ? -EIO : err;
}

static int meta_room(struct br_fs *fs, uint32_t len, uint64_t *got);
static void ungrant(struct br_fs *fs, uint64_t n);

static void rec_init(struct br_rec_header *h, uint16_t type, uint32_t len,
		     uint64_t ino)
{
	h->type = br_le16_put(type);
	h->flags = br_le16_put(0);
	h->len = br_le32_put(len);
	h->ino = br_le64_put(ino);
}

/* Log the inode's attributes if times changed since its last record.
 * Caller holds the inode's stripe lock and a pin. */
static int flush_attrs(struct br_fs *fs, struct br_inode *in)
{
	struct br_rec_inode rec;
	bool dirty;

	if (!fs->store)
		return 0;	/* read-only: times are never logged */
	memset(&rec, 0, sizeof(rec));
	rdlock(fs);
	dirty = in->attr_dirty && in->nlink > 0;
	if (dirty) {
		rec_init(&rec.h, BR_REC_INODE, sizeof(rec), in->ino);
		fs_attr_put(in, &rec.attr);
	}
	unlock(fs);
	if (!dirty)
		return 0;
	return log_record(fs, &rec, sizeof(rec), NULL);
}

/* ------------------------------------------------------------------ */
/* Completion: pending -> durable                                       */
/* ------------------------------------------------------------------ */

void fs_say(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "bringfs: %s: %s\n",
		level <= LOG_ERR ? "error" : "warning", msg);
	syslog(level, "bringfs: %s", msg);
}

void fs_io_failed(struct br_fs *fs, const char *what, uint64_t addr, int err)
{
	if (atomic_exchange(&fs->io_failed, true))
		return;
	fs_say(LOG_ERR, "%s at byte %llu failed: %s; the filesystem is read-only from now on (data synced before is safe)",
	       what, (unsigned long long)addr, strerror(-err));
}

static void on_complete(void *ctx, const struct br_store_done *done)
{
	struct br_fs *fs = ctx;
	struct fs_slot_list *l = &fs->slot[done->idx];

	if (done->err) {
		/* The store latches the error: from now on every change and
		 * every sync fails with EIO (the filesystem is read-only),
		 * while the failed buffer stays in memory, so reads of what
		 * it held still work. */
		char what[64];

		snprintf(what, sizeof(what), "writing log buffer %llu",
			 (unsigned long long)done->seq);
		fs_io_failed(fs, what, done->addr, done->err);
		return;
	}
	wrlock(fs);
	for (size_t i = 0; i < l->n; i++) {
		struct br_inode *in = find(fs, l->v[i].ino);

		if (in)
			br_extmap_complete(&in->ext, l->v[i].key, done->idx,
					   done->seq, done->addr);
	}
	l->n = 0;
	br_ckpt_on_complete(fs, done);
	unlock(fs);
}

/* Room for the chunks [k0, k1] in slot idx (map_lock write held). */
static int slot_note(struct br_fs *fs, unsigned idx, uint64_t ino,
		     uint64_t k0, uint64_t k1)
{
	struct fs_slot_list *l = &fs->slot[idx];
	size_t need = l->n + (size_t)(k1 - k0 + 1);

	if (br_grow(&l->v, &l->cap, need, sizeof(*l->v), 64))
		return -ENOMEM;
	for (uint64_t k = k0; k <= k1; k++) {
		if (l->n && l->v[l->n - 1].ino == ino && l->v[l->n - 1].key == k)
			continue;
		l->v[l->n].ino = ino;
		l->v[l->n].key = k;
		l->n++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open / close                                                         */
/* ------------------------------------------------------------------ */

static int create_root(struct br_fs *fs, const struct br_fs_options *opt)
{
	struct br_rec_create rec;
	struct br_inode tmp = { .mode = S_IFDIR | 0755 };
	struct timespec t = now();

	memset(&rec, 0, sizeof(rec));
	rec_init(&rec.h, BR_REC_CREATE, sizeof(rec), BR_ROOT_INO);
	tmp.uid = opt->root_uid;
	tmp.gid = opt->root_gid;
	tmp.atime = tmp.mtime = tmp.ctime = t;
	fs_attr_put(&tmp, &rec.attr);
	return log_record(fs, &rec, sizeof(rec), NULL);
}

static void fs_free(struct br_fs *fs)
{
	br_cleaner_free(fs);
	br_ckpt_free(fs);
	br_map_free(&fs->map, NULL);
	if (fs->segs) {
		br_seg_destroy(fs->segs);
		free(fs->segs);
	}
	for (unsigned i = 0; i < BR_RING_MAX_BUFS; i++)
		free(fs->slot[i].v);
	if (fs->rfd >= 0)
		close(fs->rfd);
	if (fs->fd >= 0)
		close(fs->fd);	/* drops the flock */
	for (unsigned i = 0; i < FS_INODE_LOCKS; i++)
		pthread_mutex_destroy(&fs->ilock[i]);
	pthread_mutex_destroy(&fs->ns_lock);
	pthread_mutex_destroy(&fs->feat_lock);
	pthread_rwlock_destroy(&fs->map_lock);
	free(fs);
}

int br_fs_open(const char *image, const struct br_fs_options *opt,
	       struct br_fs **out, char *why, size_t why_len)
{
	struct br_fs_options defopt = { 0 };
	struct br_store_config sc = { 0 };
	struct br_replay rp = { 0 };
	char lwhy[256] = "";
	struct br_fs *fs;
	int err;

	if (!opt)
		opt = &defopt;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->fd = fs->rfd = -1;
	pthread_mutex_init(&fs->ns_lock, NULL);
	for (unsigned i = 0; i < FS_INODE_LOCKS; i++)
		pthread_mutex_init(&fs->ilock[i], NULL);
	pthread_rwlock_init(&fs->map_lock, NULL);
	pthread_mutex_init(&fs->feat_lock, NULL);
	br_map_init(&fs->map);
	err = br_ckpt_init(fs);
	if (err)
		goto fail;

	fs->fd = open(image, (opt->read_only ? O_RDONLY : O_RDWR) | O_DIRECT |
		      O_CLOEXEC);
	if (fs->fd < 0) {
		err = -errno;
		br_why(why, why_len, "cannot open %s: %s", image, strerror(errno));
		goto fail;
	}
	if (!opt->read_only && flock(fs->fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		br_why(why, why_len, err == -EBUSY ?
			"%s is already mounted (or in use by another bringfs tool)" :
			"cannot lock %s: %s", image, strerror(-err));
		goto fail;
	}
	err = br_super_read(fs->fd, &fs->sb);
	if (err == BR_ERR_UNSUPPORTED) {
		br_why(why, why_len, "%s has format version %u or features this bringfs (format %u) does not support",
			image, fs->sb.version, BR_FORMAT_VERSION);
		goto fail;
	}
	if (err == BR_ERR_CORRUPT) {
		br_why(why, why_len, "%s is not a bringfs filesystem (no valid superblock, primary or backup)", image);
		goto fail;
	}
	if (err) {
		br_why(why, why_len, "cannot read the superblock of %s: %s", image, strerror(-err));
		goto fail;
	}
	err = opt->read_only ? 0 : br_super_can_write(&fs->sb);
	if (err) {
		br_why(why, why_len, "%s has read-only-compatible features this bringfs cannot write", image);
		goto fail;
	}
	fs->fsid = br_super_fsid(&fs->sb);
	fs->rfd = open(image, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fs->rfd < 0) {
		err = -errno;
		br_why(why, why_len, "cannot open %s: %s", image, strerror(errno));
		goto fail;
	}

	fs->segs = calloc(1, sizeof(*fs->segs));
	err = fs->segs ? br_seg_init(fs->segs, fs->sb.seg_count,
				     fs->sb.seg_size, fs->fd,
				     !opt->read_only && !opt->no_discard) :
			 -ENOMEM;
	if (err) {
		free(fs->segs);
		fs->segs = NULL;
		br_why(why, why_len, "cannot allocate the segment table");
		goto fail;
	}
	fs->map.segs = fs->segs;
	/* The cleaner is opt-in for now (core/cleaner.h, STATUS). */
	err = opt->read_only || !opt->cleaner ? 0 : br_cleaner_init(fs);
	if (err) {
		br_why(why, why_len, "cannot allocate the cleaner");
		goto fail;
	}

	/* newest valid slot -> its checkpoint -> roll forward; falls back
	 * to the older slot if the newest checkpoint cannot be loaded */
	fs->replaying = true;
	fs->ckpt_only = opt->read_only && opt->ckpt_only;
	err = br_ckpt_mount(fs, &rp, lwhy, sizeof(lwhy));
	fs->replaying = false;
	if (err) {
		br_why(why, why_len, "%s: %s", image, lwhy);
		goto fail;
	}
	fs->replayed_buffers = rp.buffers;
	fs->replayed_records = rp.records;
	if (opt->read_only) {
		*out = fs;
		return 0;
	}

	sc.fd = fs->fd;
	sc.nbuf = opt->nbuf;
	sc.buf_size = opt->buf_size ? opt->buf_size : fs->sb.buf_size;
	sc.mode = opt->mode;
	sc.log_start = fs->sb.log_start;
	sc.log_end = fs->sb.log_end;
	sc.next_addr = rp.addr;
	sc.seg_size = fs->sb.seg_size;
	sc.seg_end = rp.seg_end;
	sc.next_seg = rp.next_seg;
	sc.next_seq = rp.seq;
	sc.fsid = fs->fsid;
	sc.prev_nonce = rp.nonce;
	sc.on_complete = on_complete;
	sc.ctx = fs;
	sc.fault = opt->fault;
	sc.fault_ctx = opt->fault_ctx;
	sc.alloc_seg = br_seg_alloc;
	sc.placed = br_seg_on_placed;
	sc.alloc_ctx = fs->segs;
	/* where the log is; the store asks for a next_seg if there is none */
	br_seg_set_log(fs->segs, rp.seg_end ? rp.seg_end - fs->sb.seg_size :
		       rp.addr, rp.next_seg);
	err = br_store_open(&sc, &fs->store);
	if (err) {
		br_why(why, why_len, "cannot start the log on %s: %s", image, strerror(-err));
		goto fail;
	}
	br_seg_set_store(fs->segs, fs->store);	/* dead_pos waits for it */
	fs->max_data = br_store_max_record(fs->store) - (uint32_t)sizeof(struct br_rec_data);
	if (fs->max_data > MAX_DATA_PER_RECORD)
		fs->max_data = MAX_DATA_PER_RECORD;
	if (!find(fs, BR_ROOT_INO)) {
		err = create_root(fs, opt);
		if (err) {
			br_why(why, why_len, "cannot create the root directory on %s: %s",
				image, strerror(-err));
			br_store_close(fs->store);
			goto fail;
		}
	}
	err = br_ckpt_start(fs, opt->ckpt_bytes, opt->ckpt_secs);
	if (err) {
		br_why(why, why_len, "cannot start the checkpoint thread: %s",
			strerror(-err));
		br_store_close(fs->store);
		goto fail;
	}
	err = br_cleaner_start(fs, opt->clean_low);
	if (err) {
		br_why(why, why_len, "cannot start the cleaner: %s",
			strerror(-err));
		br_ckpt_stop(fs);
		br_store_close(fs->store);
		goto fail;
	}
	*out = fs;
	return 0;

fail:
	fs_free(fs);
	return err;
}

int br_fs_close(struct br_fs *fs)
{
	struct br_inode *in, *tmp;
	int err, cerr = 0;

	if (!fs)
		return 0;
	if (!fs->store) {	/* read_only */
		fs_free(fs);
		return 0;
	}
	br_cleaner_stop(fs);
	br_ckpt_stop(fs);
	HASH_ITER(hh, fs->map.inodes, in, tmp) {
		if (in->attr_dirty && in->nlink > 0) {
			pin(in);
			flush_attrs(fs, in);
			unpin(fs, in);
		}
	}
	/* A clean unmount leaves a checkpoint: the next mount replays
	 * nothing but its own records.  One with no room (a full log,
	 * br_ckpt_write) loses nothing: the next mount replays the log. */
	if (!br_store_error(fs->store) && br_ckpt_needed(fs))
		cerr = br_ckpt_write(fs);
	if (cerr == -ENOSPC)
		cerr = 0;
	err = br_store_close(fs->store);
	br_seg_set_store(fs->segs, NULL);
	fs_free(fs);
	return err ? err : cerr;
}

void br_fs_info(struct br_fs *fs, struct br_fs_info *info)
{
	rdlock(fs);
	info->inodes = fs->map.ninodes;
	unlock(fs);
	info->replayed_buffers = fs->replayed_buffers;
	info->replayed_records = fs->replayed_records;
	info->log_start = fs->sb.log_start;
	info->log_end = fs->sb.log_end;
	info->log_next = fs->store ? br_store_next_addr(fs->store) : 0;
}

/* ------------------------------------------------------------------ */
/* Names                                                                */
/* ------------------------------------------------------------------ */

int br_fs_lookup(struct br_fs *fs, uint64_t parent, const char *name,
		 struct stat *st)
{
	struct br_inode *d, *in;
	struct br_dirent *de;
	size_t len = strlen(name);
	int err = 0;

	if (len > BR_NAME_MAX)
		return -ENAMETOOLONG;
	rdlock(fs);
	d = find(fs, parent);
	if (!d)
		err = -ENOENT;
	else if (!S_ISDIR(d->mode))
		err = -ENOTDIR;
	if (err)
		goto out;
	if (len == 1 && name[0] == '.')
		in = d;
	else if (len == 2 && name[0] == '.' && name[1] == '.')
		in = find(fs, d->parent);
	else
		in = (de = br_dir_find(&d->dir, name, len)) ? find(fs, de->ino) : NULL;
	if (!in) {
		err = -ENOENT;
		goto out;
	}
	__atomic_add_fetch(&in->nlookup, 1, __ATOMIC_RELAXED);
	fill_stat(in, st);
out:
	unlock(fs);
	return err;
}

void br_fs_forget(struct br_fs *fs, uint64_t ino, uint64_t n)
{
	struct br_inode *in;

	wrlock(fs);
	in = find(fs, ino);
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		fs_inode_maybe_free(fs, in);
	}
	unlock(fs);
}

/* The new inode's entry: one lookup count and its attributes. */
static void entry_out(struct br_fs *fs, uint64_t ino, struct stat *st)
{
	struct br_inode *in;

	rdlock(fs);
	in = find(fs, ino);
	if (in) {
		__atomic_add_fetch(&in->nlookup, 1, __ATOMIC_RELAXED);
		if (st)
			fill_stat(in, st);
	}
	unlock(fs);
}

static int create(struct br_fs *fs, uint64_t parent, const char *name,
		  uint32_t mode, uint64_t rdev, const char *target,
		  const struct br_cred *cr, struct stat *st)
{
	size_t nl = strlen(name), tl = target ? strlen(target) : 0;
	struct br_rec_create *rec;
	struct br_inode tmp = { 0 }, *d;
	uint32_t len;
	uint64_t ino, got;
	int err;

	err = check_name(name);
	if (err)
		return err;
	if (target && tl == 0)
		return -ENOENT;
	if (tl >= 4096)
		return -ENAMETOOLONG;
	len = (uint32_t)(sizeof(*rec) + nl + tl);
	err = meta_room(fs, len, &got);
	if (err)
		return err;
	rec = calloc(1, len);
	if (!rec) {
		ungrant(fs, got);
		return -ENOMEM;
	}
	pthread_mutex_lock(&fs->ns_lock);
	rdlock(fs);
	err = get_dir(fs, parent, &d);
	if (!err && br_dir_find(&d->dir, name, nl))
		err = -EEXIST;
	if (!err && S_ISDIR(mode) && d->nlink >= MAX_LINKS)
		err = -EMLINK;
	if (err) {
		unlock(fs);
		goto out;
	}
	ino = fs->map.next_ino;
	tmp.mode = mode;
	tmp.uid = cr ? cr->uid : 0;
	tmp.gid = cr ? cr->gid : 0;
	if (d->mode & S_ISGID) {
		tmp.gid = d->gid;
		if (S_ISDIR(mode))
			tmp.mode |= S_ISGID;
	}
	tmp.rdev = rdev;
	tmp.atime = tmp.mtime = tmp.ctime = now();
	rec_init(&rec->h, BR_REC_CREATE, len, ino);
	rec->parent = br_le64_put(parent);
	fs_attr_put(&tmp, &rec->attr);
	rec->name_len = br_le16_put((uint16_t)nl);
	rec->target_len = br_le32_put((uint32_t)tl);
	memcpy(rec + 1, name, nl);
	if (tl)
		memcpy((char *)(rec + 1) + nl, target, tl);
	err = check_record(fs, rec, len);
	unlock(fs);
	if (!err)
		err = log_record(fs, rec, len, NULL);
	if (!err)
		entry_out(fs, ino, st);
out:
	pthread_mutex_unlock(&fs->ns_lock);
	ungrant(fs, got);
	free(rec);
	return err;
}

int br_fs_mknod(struct br_fs *fs, uint64_t parent, const char *name,
		uint32_t mode, uint64_t rdev, const struct br_cred *cr,
		struct stat *st)
{
	if ((mode & S_IFMT) == 0)
		mode |= S_IFREG;
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFIFO: case S_IFSOCK:
		rdev = 0;
		break;
	case S_IFCHR: case S_IFBLK:
		break;
	default:
		return -EINVAL;
	}
	return create(fs, parent, name, mode & (S_IFMT | 07777), rdev, NULL,
		      cr, st);
}

int br_fs_mkdir(struct br_fs *fs, uint64_t parent, const char *name,
		uint32_t mode, const struct br_cred *cr, struct stat *st)
{
	return create(fs, parent, name, S_IFDIR | (mode & 07777), 0, NULL,
		      cr, st);
}

int br_fs_symlink(struct br_fs *fs, uint64_t parent, const char *name,
		  const char *target, const struct br_cred *cr,
		  struct stat *st)
{
	return create(fs, parent, name, S_IFLNK | 0777, 0, target, cr, st);
}

ssize_t br_fs_readlink(struct br_fs *fs, uint64_t ino, char *buf,
		       size_t size)
{
	struct br_inode *in;
	ssize_t n;

	rdlock(fs);
	in = find(fs, ino);
	if (!in) {
		n = -ENOENT;
	} else if (!S_ISLNK(in->mode) || !in->target) {
		n = -EINVAL;
	} else {
		n = (ssize_t)strlen(in->target);
		if ((size_t)n > size)
			n = (ssize_t)size;
		memcpy(buf, in->target, (size_t)n);
	}
	unlock(fs);
	return n;
}

int br_fs_link(struct br_fs *fs, uint64_t ino, uint64_t newparent,
	       const char *newname, struct stat *st)
{
	size_t nl = strlen(newname);
	uint32_t len = (uint32_t)(sizeof(struct br_rec_link) + nl);
	struct br_rec_link *rec;
	struct br_inode *d, *in;
	int err = check_name(newname);
	uint64_t got;

	if (err)
		return err;
	err = meta_room(fs, len, &got);
	if (err)
		return err;
	rec = calloc(1, len);
	if (!rec) {
		ungrant(fs, got);
		return -ENOMEM;
	}
	pthread_mutex_lock(&fs->ns_lock);
	rdlock(fs);
	in = find(fs, ino);
	err = get_dir(fs, newparent, &d);
	if (!err && (!in || in->nlink == 0))
		err = -ENOENT;
	else if (!err && S_ISDIR(in->mode))
		err = -EPERM;
	else if (!err && in->nlink >= MAX_LINKS)
		err = -EMLINK;
	else if (!err && br_dir_find(&d->dir, newname, nl))
		err = -EEXIST;
	if (!err) {
		rec_init(&rec->h, BR_REC_LINK, len, ino);
		rec->parent = br_le64_put(newparent);
		rec->time = fs_time_put(now());
		rec->name_len = br_le16_put((uint16_t)nl);
		memcpy(rec + 1, newname, nl);
		err = check_record(fs, rec, len);
	}
	unlock(fs);
	if (!err)
		err = log_record(fs, rec, len, NULL);
	if (!err)
		entry_out(fs, ino, st);
	pthread_mutex_unlock(&fs->ns_lock);
	ungrant(fs, got);
	free(rec);
	return err;
}

static int remove_name(struct br_fs *fs, uint64_t parent, const char *name,
		       bool dir)
{
	size_t nl = strlen(name);
	uint32_t len = (uint32_t)(sizeof(struct br_rec_link) + nl);
	struct br_rec_link *rec;
	struct br_inode *d, *in = NULL;
	struct br_dirent *de;
	int err;

	if (nl > BR_NAME_MAX)
		return -ENAMETOOLONG;
	if (dir && nl == 1 && name[0] == '.')
		return -EINVAL;
	if (dir && nl == 2 && name[0] == '.' && name[1] == '.')
		return -ENOTEMPTY;
	err = check_name(name);
	if (err)
		return err;
	rec = calloc(1, len);
	if (!rec)
		return -ENOMEM;
	pthread_mutex_lock(&fs->ns_lock);
	rdlock(fs);
	err = get_dir(fs, parent, &d);
	if (!err) {
		de = br_dir_find(&d->dir, name, nl);
		in = de ? find(fs, de->ino) : NULL;
		if (!in)
			err = -ENOENT;
	}
	if (!err && dir && !S_ISDIR(in->mode))
		err = -ENOTDIR;
	else if (!err && !dir && S_ISDIR(in->mode))
		err = -EISDIR;
	else if (!err && dir && in->dir.live)
		err = -ENOTEMPTY;
	if (!err) {
		rec_init(&rec->h, BR_REC_UNLINK, len, in->ino);
		rec->parent = br_le64_put(parent);
		rec->time = fs_time_put(now());
		rec->name_len = br_le16_put((uint16_t)nl);
		memcpy(rec + 1, name, nl);
		err = check_record(fs, rec, len);
	}
	unlock(fs);
	if (!err)
		err = log_record(fs, rec, len, NULL);
	pthread_mutex_unlock(&fs->ns_lock);
	free(rec);
	return err;
}

int br_fs_unlink(struct br_fs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, false);
}

int br_fs_rmdir(struct br_fs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, true);
}

/* Does directory `dir` hold `name` now?  (no lock held; a peek) */
static bool name_exists(struct br_fs *fs, uint64_t dir, const char *name,
			size_t len)
{
	struct br_inode *d;
	bool found;

	rdlock(fs);
	found = !get_dir(fs, dir, &d) && br_dir_find(&d->dir, name, len);
	unlock(fs);
	return found;
}

/* Is directory `anc` the directory `ino` or above it?  (map_lock held) */
static bool ancestor(struct br_fs *fs, uint64_t anc, uint64_t ino)
{
	for (unsigned depth = 0; depth < 1u << 20; depth++) {
		struct br_inode *d;

		if (ino == anc)
			return true;
		if (ino == BR_ROOT_INO || !(d = find(fs, ino)))
			return false;
		ino = d->parent;
	}
	return true;
}

void (*br_fs_rename_hook)(struct br_fs *fs);

int br_fs_rename(struct br_fs *fs, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags)
{
	size_t ol = strlen(name), nl = strlen(newname);
	uint32_t len = (uint32_t)(sizeof(struct br_rec_rename) + ol + nl);
	struct br_rec_rename *rec;
	struct br_inode *op, *np, *in = NULL, *victim = NULL;
	struct br_dirent *ode = NULL, *nde = NULL;
	uint64_t got = 0;
	bool replaces;
	int err, room = 0;

	if ((flags & ~(BR_FS_RENAME_NOREPLACE | BR_FS_RENAME_EXCHANGE)) ||
	    flags == (BR_FS_RENAME_NOREPLACE | BR_FS_RENAME_EXCHANGE))
		return -EINVAL;
	if (ol > BR_NAME_MAX || nl > BR_NAME_MAX)
		return -ENAMETOOLONG;
	err = check_name(name);
	if (!err)
		err = check_name(newname);
	if (err)
		return err;
	rec = calloc(1, len);
	if (!rec)
		return -ENOMEM;
	/* Without room, only a rename that removes a name (its target's)
	 * may use the reserve, as an unlink would, and it asks for none (at
	 * the edge meta_room would sync, checkpoint and clean in vain).
	 * Whether it does is known for sure only under ns_lock, which
	 * meta_room must not run under (it may clean, taking inode locks):
	 * peek first, and ask for the room after all if the target went
	 * meanwhile. */
	replaces = !(flags & BR_FS_RENAME_EXCHANGE) &&
		   name_exists(fs, newparent, newname, nl);
	if (br_fs_rename_hook)
		br_fs_rename_hook(fs);
again:
	if (!replaces)
		room = meta_room(fs, len, &got);
	pthread_mutex_lock(&fs->ns_lock);
	rdlock(fs);
	err = get_dir(fs, parent, &op);
	if (!err)
		err = get_dir(fs, newparent, &np);
	if (!err) {
		ode = br_dir_find(&op->dir, name, ol);
		in = ode ? find(fs, ode->ino) : NULL;
		if (!in)
			err = -ENOENT;
	}
	if (!err) {
		nde = br_dir_find(&np->dir, newname, nl);
		victim = nde ? find(fs, nde->ino) : NULL;
		if ((flags & BR_FS_RENAME_EXCHANGE) && !victim)
			err = -ENOENT;
		else if ((flags & BR_FS_RENAME_NOREPLACE) && victim)
			err = -EEXIST;
		else if (victim == in)
			goto noop;	/* same name, or two names of one file */
	}
	if (!err && S_ISDIR(in->mode) && ancestor(fs, in->ino, np->ino))
		err = -EINVAL;
	if (!err && victim && (flags & BR_FS_RENAME_EXCHANGE)) {
		if (S_ISDIR(victim->mode) && ancestor(fs, victim->ino, op->ino))
			err = -EINVAL;
	} else if (!err && victim) {
		if (S_ISDIR(in->mode) && !S_ISDIR(victim->mode))
			err = -ENOTDIR;
		else if (!S_ISDIR(in->mode) && S_ISDIR(victim->mode))
			err = -EISDIR;
		else if (S_ISDIR(victim->mode) && victim->dir.live)
			err = -ENOTEMPTY;
	}
	if (!err && S_ISDIR(in->mode) && op != np && !victim &&
	    np->nlink >= MAX_LINKS)
		err = -EMLINK;
	if (!err && replaces && !victim) {
		unlock(fs);
		pthread_mutex_unlock(&fs->ns_lock);
		replaces = false;
		goto again;
	}
	if (!err && room && (!victim || (flags & BR_FS_RENAME_EXCHANGE)))
		err = room;
	if (!err) {
		rec_init(&rec->h, BR_REC_RENAME, len, in->ino);
		rec->old_parent = br_le64_put(parent);
		rec->new_parent = br_le64_put(newparent);
		rec->time = fs_time_put(now());
		rec->flags = br_le32_put(flags);
		rec->old_len = br_le16_put((uint16_t)ol);
		rec->new_len = br_le16_put((uint16_t)nl);
		memcpy(rec + 1, name, ol);
		memcpy((char *)(rec + 1) + ol, newname, nl);
		err = check_record(fs, rec, len);
	}
	unlock(fs);
	if (!err)
		err = log_record(fs, rec, len, NULL);
	pthread_mutex_unlock(&fs->ns_lock);
	ungrant(fs, got);
	free(rec);
	return err;
noop:
	unlock(fs);
	pthread_mutex_unlock(&fs->ns_lock);
	ungrant(fs, got);
	free(rec);
	return 0;
}

/* One entry for br_fs_readdir (fill) or br_fs_readdirplus (plus: with
 * attributes, and the lookup count raised if the reply took the entry;
 * never for "." and "..", which the kernel does not count).  map_lock
 * read held.  Nonzero: the reply is full. */
static int dir_emit(const char *name, struct br_inode *in,
		    uint64_t ino, uint32_t type, uint64_t next,
		    br_fs_fill_fn fill, br_fs_fillplus_fn plus, void *ctx)
{
	struct stat st;
	bool dot = name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));

	if (!plus)
		return fill(ctx, name, ino, type, next);
	if (!in)
		return 0;	/* cannot happen: names point at inodes */
	fill_stat(in, &st);
	if (plus(ctx, name, &st, next))
		return 1;
	if (!dot)
		__atomic_add_fetch(&in->nlookup, 1, __ATOMIC_RELAXED);
	return 0;
}

static int dir_walk(struct br_fs *fs, uint64_t ino, uint64_t off,
		    br_fs_fill_fn fill, br_fs_fillplus_fn plus, void *ctx)
{
	struct br_inode *d;
	struct br_dirent *de;
	int err = 0;

	rdlock(fs);
	d = find(fs, ino);
	if (!d) {
		err = -ENOENT;
		goto out;
	}
	if (!S_ISDIR(d->mode)) {
		err = -ENOTDIR;
		goto out;
	}
	if (off < 1 && dir_emit(".", d, d->ino, S_IFDIR, 1, fill, plus, ctx))
		goto out;
	if (off < 2 && dir_emit("..", find(fs, d->parent), d->parent,
				S_IFDIR, 2, fill, plus, ctx))
		goto out;
	for (de = br_dir_next(&d->dir, off < 2 ? 2 : off); de;
	     de = br_dir_next(&d->dir, de->cookie)) {
		if (dir_emit(de->name, plus ? find(fs, de->ino) : NULL,
			     de->ino, de->type, de->cookie, fill, plus, ctx))
			break;
	}
out:
	unlock(fs);
	return err;
}

int br_fs_readdir(struct br_fs *fs, uint64_t ino, uint64_t off,
		  br_fs_fill_fn fill, void *ctx)
{
	return dir_walk(fs, ino, off, fill, NULL, ctx);
}

int br_fs_readdirplus(struct br_fs *fs, uint64_t ino, uint64_t off,
		      br_fs_fillplus_fn fill, void *ctx)
{
	return dir_walk(fs, ino, off, NULL, fill, ctx);
}

/* ------------------------------------------------------------------ */
/* Attributes                                                           */
/* ------------------------------------------------------------------ */

int br_fs_getattr(struct br_fs *fs, uint64_t ino, struct stat *st)
{
	struct br_inode *in;
	int err = 0;

	rdlock(fs);
	in = find(fs, ino);
	if (in)
		fill_stat(in, st);
	else
		err = -ENOENT;
	unlock(fs);
	return err;
}

int br_fs_setattr(struct br_fs *fs, uint64_t ino, const struct br_setattr *sa,
		  struct stat *st)
{
	pthread_mutex_t *il = ilock(fs, ino);
	struct br_rec_inode rec;
	struct br_inode *in, tmp;
	struct timespec t = now();
	uint64_t got = 0;
	bool shrink;
	int err, room = 0;

	err = get(fs, ino, &in);
	if (err)
		return err;
	/* Without room, only a truncate that shrinks the file may use the
	 * reserve (it gives space back), and it asks for none: at the edge
	 * meta_room would sync, checkpoint and clean in vain first.  One to
	 * the same size (open's O_TRUNC of an empty file) gives nothing
	 * back: 24000 of them at the edge, let in, filled the reserve to no
	 * free segment with the checkpoint that would free theirs unable to
	 * fit.  The size is read again under the inode's lock (meta_room may
	 * clean, which takes inode locks, so it runs before): if the file
	 * grew meanwhile, the room is asked for after all. */
	rdlock(fs);
	shrink = (sa->valid & BR_SET_SIZE) && sa->size < in->size;
	unlock(fs);
	for (;;) {
		if (!shrink)
			room = meta_room(fs, sizeof(rec), &got);
		pthread_mutex_lock(il);
		rdlock(fs);
		tmp = attrs_of(in);
		unlock(fs);
		if (!shrink || sa->size < tmp.size)
			break;
		pthread_mutex_unlock(il);
		shrink = false;
	}
	memset(&rec, 0, sizeof(rec));
	if (room && (!(sa->valid & BR_SET_SIZE) || sa->size >= tmp.size)) {
		err = room;
		goto out;
	}
	if (sa->valid & BR_SET_SIZE) {
		if (S_ISDIR(tmp.mode))
			err = -EISDIR;
		else if (!S_ISREG(tmp.mode))
			err = -EINVAL;
		else if (sa->size > MAX_FILE_SIZE)
			err = -EFBIG;
		if (err)
			goto out;
		if (sa->size != tmp.size) {
			tmp.size = sa->size;
			tmp.mtime = t;
		}
	}
	if (sa->valid & BR_SET_MODE)
		tmp.mode = (tmp.mode & S_IFMT) | (sa->mode & 07777);
	if (sa->valid & BR_SET_UID)
		tmp.uid = sa->uid;
	if (sa->valid & BR_SET_GID)
		tmp.gid = sa->gid;
	if (sa->valid & BR_SET_ATIME_NOW)
		tmp.atime = t;
	else if (sa->valid & BR_SET_ATIME)
		tmp.atime = sa->atime;
	if (sa->valid & BR_SET_MTIME_NOW)
		tmp.mtime = t;
	else if (sa->valid & BR_SET_MTIME)
		tmp.mtime = sa->mtime;
	tmp.ctime = (sa->valid & BR_SET_CTIME) ? sa->ctime : t;
	rec_init(&rec.h, BR_REC_INODE, sizeof(rec), ino);
	fs_attr_put(&tmp, &rec.attr);
	err = log_record(fs, &rec, sizeof(rec), NULL);
	if (!err && st) {
		rdlock(fs);
		fill_stat(in, st);
		unlock(fs);
	}
out:
	pthread_mutex_unlock(il);
	ungrant(fs, got);
	unpin(fs, in);
	return err;
}

/* ------------------------------------------------------------------ */
/* Data                                                                 */
/* ------------------------------------------------------------------ */

struct rd_io {
	uint64_t dst;		/* offset in the caller's buffer */
	uint64_t addr;		/* log address */
	uint64_t len;
};

struct rd_ctx {
	struct br_fs *fs;
	uint8_t *buf;
	uint64_t base;		/* file offset of buf[0] */
	struct rd_io *io;
	size_t nio, cap;
	int err;
};

static int rd_piece(void *ctx, uint64_t off, uint64_t len,
		    const struct br_extent *e, uint64_t delta)
{
	struct rd_ctx *rc = ctx;
	uint8_t *dst = rc->buf + (off - rc->base);
	struct br_loc l;

	if (!e) {
		memset(dst, 0, len);
		return 0;
	}
	l = br_extent_loc(e, delta);
	if (l.kind == BR_EXT_PENDING) {
		memcpy(dst, br_store_slot(rc->fs->store, l.idx) + l.boff, len);
		return 0;
	}
	if (rc->nio) {
		struct rd_io *p = &rc->io[rc->nio - 1];

		if (p->addr + p->len == l.v && p->dst + p->len == off - rc->base) {
			p->len += len;
			return 0;
		}
	}
	if (br_grow(&rc->io, &rc->cap, rc->nio + 1, sizeof(*rc->io), 16)) {
		rc->err = -ENOMEM;
		return 1;
	}
	rc->io[rc->nio++] = (struct rd_io){ off - rc->base, l.v, len };
	return 0;
}

/*
 * Read the pieces io[0..n) (ascending log addresses, each gap at most
 * READ_GAP_MAX, total span at most READ_SPAN_MAX: see read_pieces) with
 * one aligned O_DIRECT read through a bounce buffer.  A file written in
 * small sequential writes sits in the log as data separated by 24-byte
 * record headers; this turns its reads back into large ones.
 */
#define READ_GAP_MAX (64u << 10)
#define READ_SPAN_MAX (4u << 20)

/*
 * Bounce buffers: one per thread, kept between reads (up to BOUNCE_KEEP
 * bytes, enough for a 1 MiB request and its record headers), so a stream
 * of large reads does not mmap, fault in (zero) and munmap a fresh buffer
 * each time: perf of a cold 1 MiB sequential read showed clear_page under
 * get_user_pages at ~7% of the daemon.  The key's destructor frees the
 * buffer when the thread exits.
 */
#define BOUNCE_KEEP (2u << 20)

static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static bool bounce_key_ok;
static __thread uint8_t *bounce_buf;	/* this thread's, or NULL */
static __thread size_t bounce_cap;

static void bounce_key_init(void)
{
	bounce_key_ok = pthread_key_create(&bounce_key, free) == 0;
}

/* An aligned buffer of len bytes; release it with bounce_put(). */
static uint8_t *bounce_get(size_t len)
{
	void *b;

	if (len <= bounce_cap)
		return bounce_buf;
	pthread_once(&bounce_once, bounce_key_init);
	if (len > BOUNCE_KEEP || !bounce_key_ok)
		return posix_memalign(&b, BR_BLOCK_SIZE, len) ? NULL : b;
	if (posix_memalign(&b, BR_BLOCK_SIZE, BOUNCE_KEEP))
		return NULL;
	if (pthread_setspecific(bounce_key, b)) {
		free(b);
		return NULL;
	}
	free(bounce_buf);
	bounce_buf = b;
	bounce_cap = BOUNCE_KEEP;
	return b;
}

static void bounce_put(uint8_t *b)
{
	if (b != bounce_buf)
		free(b);
}

static int read_group(struct br_fs *fs, uint8_t *buf, const struct rd_io *io,
		      size_t n)
{
	uint64_t a0 = io[0].addr & ~(uint64_t)(BR_BLOCK_SIZE - 1);
	uint64_t end = io[n - 1].addr + io[n - 1].len;
	uint64_t a1 = (end + BR_BLOCK_SIZE - 1) & ~(uint64_t)(BR_BLOCK_SIZE - 1);
	size_t len = (size_t)(a1 - a0), done = 0;
	uint8_t *b = bounce_get(len);
	int err = 0;

	if (!b)
		return -ENOMEM;
	while (done < len) {
		ssize_t r = pread(fs->rfd, b + done, len - done, (off_t)(a0 + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)r;
	}
	for (size_t i = 0; !err && i < n; i++)
		memcpy(buf + io[i].dst, b + (io[i].addr - a0), io[i].len);
	bounce_put(b);
	return err;
}

static int read_pieces(struct br_fs *fs, uint8_t *buf, const struct rd_io *io,
		       size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i + 1;
		int err;

		while (j < n && io[j].addr >= io[j - 1].addr + io[j - 1].len &&
		       io[j].addr - (io[j - 1].addr + io[j - 1].len) <= READ_GAP_MAX &&
		       io[j].addr + io[j].len - io[i].addr <= READ_SPAN_MAX)
			j++;
		err = read_group(fs, buf, io + i, j - i);
		if (err)
			return err;
		i = j;
	}
	return 0;
}

static bool atime_due(const struct br_inode *in, struct timespec t)
{
	/* relatime: update when atime is not newer than mtime or ctime, or
	 * is a day old */
	if (in->atime.tv_sec < in->mtime.tv_sec ||
	    (in->atime.tv_sec == in->mtime.tv_sec && in->atime.tv_nsec <= in->mtime.tv_nsec))
		return true;
	if (in->atime.tv_sec < in->ctime.tv_sec ||
	    (in->atime.tv_sec == in->ctime.tv_sec && in->atime.tv_nsec <= in->ctime.tv_nsec))
		return true;
	return t.tv_sec - in->atime.tv_sec >= 24 * 3600;
}

ssize_t br_fs_read(struct br_fs *fs, uint64_t ino, void *buf, size_t size,
		   uint64_t off)
{
	struct rd_ctx rc = { .fs = fs, .buf = buf, .base = off };
	struct timespec t = now();
	struct br_inode *in;
	uint64_t n = 0;
	bool touch_atime = false;
	int err = 0;

	br_seg_read_begin(fs->segs);	/* until the pread is done */
	rdlock(fs);
	in = find(fs, ino);
	if (!in)
		err = -ENOENT;
	else if (S_ISDIR(in->mode))
		err = -EISDIR;
	else if (!S_ISREG(in->mode))
		err = -EINVAL;
	if (!err && off < in->size) {
		n = in->size - off < size ? in->size - off : size;
		br_extmap_walk(&in->ext, off, n, rd_piece, &rc);
		err = rc.err;
	}
	if (!err && fs->store)	/* read-only: atime stays as logged */
		touch_atime = atime_due(in, t);
	unlock(fs);
	if (!err)
		err = read_pieces(fs, rc.buf, rc.io, rc.nio);
	br_seg_read_end(fs->segs);
	free(rc.io);
	if (err)
		return err;
	if (touch_atime) {
		wrlock(fs);
		in = find(fs, ino);
		if (in) {
			br_ckpt_cow(fs, in);
			in->atime = t;
			in->attr_dirty = true;
		}
		unlock(fs);
	}
	return (ssize_t)n;
}

/* One data record of n bytes at off (ilock held, inode pinned); touch:
 * a user write (mtime/ctime change), not the cleaner's move. */
static int write_record(struct br_fs *fs, struct br_inode *in,
			const uint8_t *src, uint32_t n, uint64_t off,
			bool touch)
{
	uint32_t len = (uint32_t)sizeof(struct br_rec_data) + n;
	struct br_rec_data *rec;
	struct fs_apply ax = { 0 };
	struct br_resv r;
	int err;

	err = br_store_reserve(fs->store, len, &r);
	if (err)
		return err;
	rec = (struct br_rec_data *)r.ptr;
	rec_init(&rec->h, BR_REC_DATA, len, in->ino);
	rec->off = br_le64_put(off);
	memcpy(rec + 1, src, n);
	ax.pos = r.pos;
	ax.data.kind = BR_EXT_PENDING;
	ax.data.idx = (uint8_t)r.idx;
	ax.data.v = r.seq;
	ax.data.boff = r.off + (uint32_t)sizeof(*rec);
	wrlock(fs);
	err = slot_note(fs, r.idx, in->ino, off >> BR_CHUNK_SHIFT,
			(off + n - 1) >> BR_CHUNK_SHIFT);
	if (!err)
		err = fs_apply(fs, &rec->h, len, &ax);
	if (!err && touch) {
		in->mtime = in->ctime = now();
		in->attr_dirty = true;
	}
	unlock(fs);
	if (err)
		rec->h.type = br_le16_put(BR_REC_PAD);
	br_store_commit(fs->store, &r);
	return err == BR_ERR_CORRUPT ? -EIO : err;
}

/* Bytes copied into the ring's open buffer: written, but they take their
 * segment only once it is sealed and placed, so the free segments do not
 * count them yet.  An estimate from above (a buffer capped to its
 * segment's room counts the cap's shortfall too), so that neither a
 * grant nor df promises them twice. */
static uint64_t open_bytes(struct br_fs *fs)
{
	return fs->sb.buf_size - br_store_room(fs->store);
}

/*
 * Grant up to `size` bytes of the room above the reserve: the free
 * segments beyond res and what a cleaning pass holds for its moves
 * (cleaner.h: users must not eat the room it needs to finish), less what
 * other writes were granted and have not copied yet.  Returns the bytes
 * granted, at least `min`, or 0; the caller gives them back with ungrant.
 */
static uint64_t grant(struct br_fs *fs, uint64_t res, uint64_t size,
		      uint64_t min)
{
	uint64_t nfree = br_seg_nfree(fs->segs), held = br_cleaner_held(fs);
	uint64_t room, old, got, open;

	/* a pass moves into the reserve first (its budget leaves only
	 * BR_CLEAN_META_SEGS): only what it holds beyond is users' room */
	held = held > res - BR_CLEAN_META_SEGS ?
	       held - (res - BR_CLEAN_META_SEGS) : 0;
	if (nfree <= res + held)
		return 0;
	room = (nfree - res - held) * fs->segs->seg_size;
	/* the open buffer's bytes were granted and given back, but take
	 * their room only once it is sealed (with -b 512K -S 512K a whole
	 * segment: passes then found the last free one and a fill got
	 * ENOSPC with a quarter of the log dead, with the CPU busy) */
	open = open_bytes(fs);
	if (room <= open)
		return 0;
	room -= open;
	old = atomic_load_explicit(&fs->granted, memory_order_relaxed);
	do {
		if (old >= room || room - old < min)
			return 0;
		got = room - old < size ? room - old : size;
	} while (!atomic_compare_exchange_weak_explicit(&fs->granted, &old,
							old + got,
							memory_order_relaxed,
							memory_order_relaxed));
	return got;
}

/* grant, waiting for up to 8 passes that hold the room: each gives back
 * more than it holds */
static uint64_t grant_wait(struct br_fs *fs, uint64_t res, uint64_t size,
			   uint64_t min)
{
	for (int waits = 0;; waits++) {
		uint64_t got = grant(fs, res, size, min);

		if (got || waits == 8 || !br_cleaner_held(fs) ||
		    br_seg_nfree(fs->segs) <= res)
			return got;
		br_cleaner_wait(fs);
	}
}

static void ungrant(struct br_fs *fs, uint64_t n)
{
	if (n)
		atomic_fetch_sub_explicit(&fs->granted, n,
					  memory_order_relaxed);
}

/*
 * User data may use the log only above fs_user_reserve() free segments
 * (segment.h): the reserve keeps room for the records that free space
 * (unlink, truncate, punch), for checkpoints and, with the cleaner on,
 * for a pass to move live data into, so a full filesystem never
 * deadlocks and partly dead segments can always be reclaimed.  A write
 * is granted bytes of that room, not segments (grant): a 1 MiB request
 * on 512 KiB segments let through at one free segment above the reserve
 * took three, and with the reserve gone the cleaner had no room left to
 * move into (ENOSPC with a quarter of the log dead).  Returns the bytes
 * granted (at least min, at most size; fewer than size makes a short
 * write) or -errno.
 * Called with no lock held (br_ckpt_write takes them all).  Bytes copied
 * into the ring but not yet placed in a segment (the open buffer's) are
 * taken off the room too: the free segments do not count them yet.
 *
 * A write is short only when the steps under `low` cannot make room for
 * all of it.  Granting the part that fitted at once cut 4 KiB O_DIRECT
 * writes short, which the kernel turns into EIO, on a 90 % full
 * filesystem whose cleaner would have made room in a moment (1 GiB of
 * 1 MiB one-buffer segments, 3 of 4 runs of random overwrites).
 */
static int64_t space_check(struct br_fs *fs, uint64_t size, uint64_t min)
{
	struct br_seg_space sp;
	uint64_t res = fs_user_reserve(fs), seg = fs->segs->seg_size, got;
	int err = 0;

	/* A pass holds what is above the reserve: wait for it to end
	 * rather than take a checkpoint or fail */
	got = grant_wait(fs, res, size, size);
	if (!got)
		goto low;
	if (br_cleaner_wanted(fs))
		br_cleaner_kick(fs);
	if (fs->cleaner && br_seg_nfree(fs->segs) <= res + BR_CLEAN_SYNC_SEGS)
		/* Near the reserve with cleaning on: clean here while a
		 * pass still has room to gain (BR_CLEAN_SYNC_SEGS); this
		 * also throttles writers that outrun the background thread.
		 * Best effort, and the grant stands: a pass's budget leaves
		 * granted bytes alone (cleaner.c, pick). */
		(void)br_cleaner_run(fs, (unsigned)(res - BR_SEG_RESERVE +
						     BR_CLEAN_SYNC_SEGS - 1));
	return (int64_t)got;
low:
	/* Segments with no live data wait for the records that emptied
	 * them to be durable (a sync frees them) or for a checkpoint. */
	br_seg_space(fs->segs, &sp);
	if (sp.dead_segs > sp.ckpt_segs) {
		err = br_store_sync_all(fs->store);
		if (err)
			return err;
		got = grant_wait(fs, res, size, size);
		if (got)
			return (int64_t)got;
	}
	/* (even when it frees fewer segments than its blob takes: df
	 * promised them, and the reserve holds a checkpoint's room; not
	 * when the blob would not fit, the segments it frees come back
	 * only once it is written) */
	if (sp.ckpt_segs && sp.free_segs > br_ckpt_segs(fs) &&
	    sp.free_segs + sp.dead_segs > res) {
		err = br_ckpt_write(fs);
		if (err)
			return err;
		got = grant_wait(fs, res, size, size);
		if (got)
			return (int64_t)got;
	}
	/* Partly dead segments: clean before giving up, enough for the
	 * whole write beside the open buffer (grant takes its bytes off).
	 * br_cleaner_run waits for a pass already running and holds no
	 * lock of ours. */
	if (fs->cleaner)
		err = br_cleaner_run(fs, (unsigned)(res - BR_SEG_RESERVE +
				     (size + open_bytes(fs) - 1) / seg));
	/* what there is: a short write, or ENOSPC */
	got = grant_wait(fs, res, size, min);
	if (got)
		return (int64_t)got;
	return err ? err : -ENOSPC;
}

/*
 * Room for a metadata record that adds to what the filesystem holds (a
 * file, a name, an xattr, attributes): above the user reserve, as for
 * data.  The reserve is for the records that give space back (unlink,
 * rmdir, a rename over a name, a shrinking truncate, punch,
 * removexattr) and the checkpoint that frees their segments: without
 * this check, creating files on a full filesystem ate the room a delete
 * needs (test_cleaner, test_full_filesystem_refuses_new_names).  A record
 * is never cut short: all of len or -ENOSPC (or the error of the sync
 * that tried to make room), *got the bytes to ungrant after logging it
 * (0 when read-only: log_record says EROFS).  No lock held.
 */
static int meta_room(struct br_fs *fs, uint32_t len, uint64_t *got)
{
	int64_t g = fs->store ? space_check(fs, len, len) : 0;

	*got = g > 0 ? (uint64_t)g : 0;
	return g < 0 ? (int)g : 0;
}

int fs_feature_set(struct br_fs *fs, uint64_t bits)
{
	struct br_super sb;
	int err = 0;

	pthread_mutex_lock(&fs->feat_lock);
	rdlock(fs);
	sb = fs->sb;
	unlock(fs);
	if ((sb.feat_incompat & bits) != bits) {
		sb.feat_incompat |= bits;
		err = br_super_write(fs->fd, &sb);	/* synced */
		if (!err) {
			wrlock(fs);
			fs->sb.feat_incompat |= bits;
			unlock(fs);
		}
	}
	pthread_mutex_unlock(&fs->feat_lock);
	return err;
}

int fs_log_relocs(struct br_fs *fs, uint64_t ino, const struct fs_move *mv,
		  size_t n, uint64_t *pos, uint64_t *moved)
{
	_Alignas(8) uint8_t rec[FS_RELOCS_MAX];
	struct br_rec_relocs *h = (void *)rec;
	pthread_mutex_t *il = ilock(fs, ino);
	struct br_inode *in;
	size_t i = 0;
	int err = 0;

	if (get(fs, ino, &in))
		return 0;	/* gone: its data died with it */
	/* Under the inode's lock no write, truncate or punch of it comes
	 * between the check and the apply; a completion only makes pending
	 * bytes durable, never at old, and the pin keeps the inode. */
	pthread_mutex_lock(il);
	while (i < n && !err) {
		struct br_reloc end = { 0 };
		uint32_t len = sizeof(*h), count = 0;
		uint64_t live = 0;

		rdlock(fs);
		for (; i < n && len + BR_RELOC_ENT_MAX <= sizeof(rec); i++) {
			uint64_t l;

			/* the copy was read from seg in its use number gen
			 * (segment.h, "Reuse generation") */
			if (br_seg_gen(fs->segs, mv[i].seg) != mv[i].gen ||
			    !S_ISREG(in->mode))
				continue;
			l = br_extmap_at(&in->ext, mv[i].m.off, mv[i].m.len,
					 mv[i].m.old_addr);
			if (!l)
				continue;	/* dead: not worth an entry */
			len += br_reloc_put(rec + len, &end, &mv[i].m);
			live += l;
			count++;
		}
		unlock(fs);
		if (!count)
			continue;
		memset(h, 0, sizeof(*h));
		rec_init(&h->h, BR_REC_RELOCS, len, ino);
		h->count = br_le32_put(count);
		err = log_record(fs, rec, len, pos);
		if (!err)
			*moved += live;
	}
	pthread_mutex_unlock(il);
	unpin(fs, in);
	return err;
}

ssize_t br_fs_write(struct br_fs *fs, uint64_t ino, const void *buf,
		    size_t size, uint64_t off)
{
	pthread_mutex_t *il = ilock(fs, ino);
	struct br_inode *in;
	size_t done = 0;
	uint64_t got = 0;
	int64_t g;
	int err;

	if (!fs->store)
		return -EROFS;
	if (size == 0)
		return 0;
	if (off > MAX_FILE_SIZE || size > MAX_FILE_SIZE - off)
		return -EFBIG;
	err = get(fs, ino, &in);
	if (err)
		return err;
	if (S_ISDIR(mode_of(in)))
		err = -EISDIR;
	else if (!S_ISREG(mode_of(in)))
		err = -EINVAL;
	if (err)
		goto out;
	g = space_check(fs, size, 1);
	if (g < 0) {
		err = (int)g;
		goto out;
	}
	got = (uint64_t)g;
	if (got < size) {
		/* a short write, ending on a 4 KiB boundary of the file
		 * when it can (as the records' cuts below) */
		uint64_t end = (off + got) & ~(uint64_t)(BR_BLOCK_SIZE - 1);

		size = end > off ? (size_t)(end - off) : (size_t)got;
	}
	pthread_mutex_lock(il);
	while (done < size) {
		uint32_t n = size - done < fs->max_data ? (uint32_t)(size - done)
							: fs->max_data;
		uint32_t room = br_store_room(fs->store);

		/* Fill the buffer instead of sealing it with room to spare:
		 * a record that does not fit seals the buffer, and that
		 * buffer's unused end is lost twice, in the buffer and in
		 * the segment tail the next full buffer then cannot use
		 * (with 4 buffers to a segment, 1 MiB writes of 256 KiB
		 * records left segments 79 % full).  Pieces below FILL_MIN
		 * are not worth an extra extent. */
		if (room >= sizeof(struct br_rec_data) + FILL_MIN &&
		    n > room - sizeof(struct br_rec_data))
			n = room - (uint32_t)sizeof(struct br_rec_data);
		/* A cut ends on a 4 KiB boundary of the file, wherever the
		 * buffer's room or max_data (not a multiple of 4 KiB with
		 * buffers up to 256 KiB) put it: a crash then keeps a
		 * prefix of an unacknowledged write in whole pages, as the
		 * kernel's page-sized pieces would (the SIGKILL tests'
		 * exact checker, tests/crash/kill_torture.c, relies on
		 * it).  It costs less than a block of the buffer's room. */
		if (n < size - done) {
			uint64_t end = (off + done + n) &
				       ~(uint64_t)(BR_BLOCK_SIZE - 1);

			if (end > off + done)
				n = (uint32_t)(end - (off + done));
		}

		err = write_record(fs, in, (const uint8_t *)buf + done, n,
				   off + done, true);
		if (err)
			break;
		done += n;
	}
	pthread_mutex_unlock(il);
	atomic_fetch_add_explicit(&fs->user_bytes, done, memory_order_relaxed);
out:
	ungrant(fs, got);
	unpin(fs, in);
	return done ? (ssize_t)done : err;
}

int br_fs_flush(struct br_fs *fs, uint64_t ino)
{
	pthread_mutex_t *il = ilock(fs, ino);
	struct br_inode *in;
	int err = get(fs, ino, &in);

	if (err)
		return err;
	pthread_mutex_lock(il);
	err = flush_attrs(fs, in);
	pthread_mutex_unlock(il);
	unpin(fs, in);
	return err;
}

int br_fs_fsync(struct br_fs *fs, uint64_t ino, bool datasync)
{
	pthread_mutex_t *il = ilock(fs, ino);
	struct br_inode *in;
	uint64_t pos;
	int err;

	if (!fs->store)
		return 0;	/* read-only: everything it shows is durable */
	err = get(fs, ino, &in);
	if (err)
		return err;
	pthread_mutex_lock(il);
	/* fdatasync may skip times, but not a size change: sizes travel in
	 * data records already, so only times are left out. */
	if (!datasync)
		err = flush_attrs(fs, in);
	rdlock(fs);
	pos = in->pos;
	unlock(fs);
	pthread_mutex_unlock(il);
	unpin(fs, in);
	if (err)
		return err;
	err = pos ? br_store_sync(fs->store, pos) : 0;
	return err ? err : br_store_error(fs->store);
}

int br_fs_syncfs(struct br_fs *fs)
{
	struct br_inode *in, *tmp;
	uint64_t *dirty = NULL;
	size_t n = 0, cap = 0;
	int err = 0;

	if (!fs->store)
		return 0;	/* read-only */
	/* sync(2) promises times too: log the lazily kept ones first.  The
	 * numbers are collected under map_lock, the records logged under
	 * each inode's own lock (flush_attrs re-checks attr_dirty). */
	rdlock(fs);
	HASH_ITER(hh, fs->map.inodes, in, tmp) {
		if (!in->attr_dirty || in->nlink == 0)
			continue;
		if (br_grow(&dirty, &cap, n + 1, sizeof(*dirty), 64)) {
			err = -ENOMEM;
			break;
		}
		dirty[n++] = in->ino;
	}
	unlock(fs);
	for (size_t i = 0; i < n && !err; i++) {
		pthread_mutex_t *il = ilock(fs, dirty[i]);

		if (get(fs, dirty[i], &in))
			continue;	/* gone since */
		pthread_mutex_lock(il);
		err = flush_attrs(fs, in);
		pthread_mutex_unlock(il);
		unpin(fs, in);
	}
	free(dirty);
	if (!err)
		err = br_store_sync_all(fs->store);
	return err ? err : br_store_error(fs->store);
}

/* Segments user data leaves free (segment.h): metadata's reserve, room
 * for the next checkpoint beyond one of its segments (segments written
 * since the last checkpoint are freed by the next one alone: a full log
 * with no room for it would stay full whatever is deleted), and with the
 * cleaner on the room a pass moves into. */
uint64_t fs_user_reserve(struct br_fs *fs)
{
	uint64_t ck = br_ckpt_segs(fs);

	return BR_SEG_RESERVE + (ck > 1 ? ck - 1 : 0) +
	       (fs->cleaner ? BR_SEG_CLEAN_ROOM : 0);
}

/*
 * What users can still write (statfs's f_bavail and f_bfree, fallocate):
 * the free and dead segments beyond the user reserve, the rest of the
 * log's current and next segment and, with the cleaner on, the dead
 * space it can reach (br_seg_user_avail), less what the open buffer
 * holds.  Never more:
 * tests/mount/test_enospc.sh writes until ENOSPC and compares.
 */
static uint64_t free_bytes(struct br_fs *fs)
{
	uint64_t avail, seg = fs->segs->seg_size, lost, open;

	if (!fs->store)
		return 0;	/* read-only: no room to write, as on squashfs */
	avail = br_seg_user_avail(fs->segs, br_store_next_addr(fs->store),
				  fs_user_reserve(fs), fs->cleaner != NULL);
	/* Not all of a segment holds file data: each buffer loses up to a
	 * block to its 4 KiB cut (br_fs_write) and its header, record
	 * headers and the metadata of the files take their share, and a
	 * segment's last block is skipped when less than two are left
	 * (store.c, store_next_cap).
	 * Measured: ~21 KiB of a 1 MiB segment of 256 KiB buffers filled
	 * with 512 KiB files (tests/mount/test_enospc.sh); promise a block
	 * per buffer and one more per segment less. */
	lost = (seg / fs->sb.buf_size + 1) * BR_BLOCK_SIZE;
	if (lost < seg)
		avail -= avail / seg * lost + avail % seg * lost / seg;
	/* written but not placed yet (grant counts them the same way) */
	open = open_bytes(fs);
	return avail > open ? avail - open : 0;
}

int br_fs_fallocate(struct br_fs *fs, uint64_t ino, unsigned mode,
		    uint64_t off, uint64_t len)
{
	pthread_mutex_t *il = ilock(fs, ino);
	struct br_inode *in;
	int err;

	if (mode & ~(BR_FALLOC_KEEP_SIZE | BR_FALLOC_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if ((mode & BR_FALLOC_PUNCH_HOLE) && !(mode & BR_FALLOC_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (len == 0)
		return -EINVAL;
	if (off > MAX_FILE_SIZE || len > MAX_FILE_SIZE - off)
		return -EFBIG;
	err = get(fs, ino, &in);
	if (err)
		return err;
	if (S_ISDIR(mode_of(in)))
		err = -EISDIR;
	else if (!S_ISREG(mode_of(in)))
		err = -ENODEV;
	if (err)
		goto out;
	pthread_mutex_lock(il);
	if (mode & BR_FALLOC_PUNCH_HOLE) {
		struct br_rec_punch rec;

		memset(&rec, 0, sizeof(rec));
		rec_init(&rec.h, BR_REC_PUNCH, sizeof(rec), ino);
		rec.off = br_le64_put(off);
		rec.len = br_le64_put(len);
		rec.time = fs_time_put(now());
		err = log_record(fs, &rec, sizeof(rec), NULL);
	} else {
		struct br_rec_inode rec;
		bool grow = false;
		uint64_t need;

		rdlock(fs);
		/* A log has no blocks to reserve; what matters is that the
		 * range can be written: promise it only if the log has room. */
		need = off + len > in->size ? off + len - in->size : 0;
		if (need > free_bytes(fs)) {
			err = -ENOSPC;
		} else if (!(mode & BR_FALLOC_KEEP_SIZE) && need) {
			struct br_inode tmp = attrs_of(in);

			tmp.size = off + len;
			tmp.mtime = tmp.ctime = now();
			memset(&rec, 0, sizeof(rec));
			rec_init(&rec.h, BR_REC_INODE, sizeof(rec), ino);
			fs_attr_put(&tmp, &rec.attr);
			grow = true;
		}
		unlock(fs);
		if (grow)
			err = log_record(fs, &rec, sizeof(rec), NULL);
	}
	pthread_mutex_unlock(il);
out:
	unpin(fs, in);
	return err;
}

int br_fs_lseek(struct br_fs *fs, uint64_t ino, uint64_t off, int whence,
		uint64_t *res)
{
	struct br_inode *in;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	rdlock(fs);
	in = find(fs, ino);
	if (!in)
		err = -ENOENT;
	else if (!S_ISREG(in->mode))
		err = -EINVAL;
	else
		err = br_extmap_seek(&in->ext, off, in->size,
				     whence == SEEK_DATA, res);
	unlock(fs);
	return err;
}

int br_fs_statfs(struct br_fs *fs, struct statvfs *sv)
{
	uint64_t total = fs->sb.log_end - fs->sb.log_start;
	uint64_t avail = free_bytes(fs);

	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = BR_BLOCK_SIZE;
	sv->f_frsize = BR_BLOCK_SIZE;
	sv->f_blocks = total / BR_BLOCK_SIZE;
	sv->f_bfree = avail / BR_BLOCK_SIZE;
	sv->f_bavail = sv->f_bfree;
	rdlock(fs);
	/* inodes cost log space, not slots: report one per free block */
	sv->f_files = fs->map.ninodes + sv->f_bfree;
	unlock(fs);
	sv->f_ffree = sv->f_bfree;
	sv->f_favail = sv->f_ffree;
	sv->f_fsid = fs->fsid;
	sv->f_namemax = BR_NAME_MAX;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                  */
/* ------------------------------------------------------------------ */

static int xattr_log(struct br_fs *fs, uint64_t ino, const char *name,
		     const void *value, size_t size, int flags, bool set)
{
	pthread_mutex_t *il = ilock(fs, ino);
	size_t nl = strlen(name);
	uint32_t len = (uint32_t)(sizeof(struct br_rec_xattr) + nl + size);
	struct br_rec_xattr *rec;
	struct br_inode *in;
	struct br_xattr *x;
	uint64_t got = 0;
	int err;

	if (nl == 0 || nl > BR_NAME_MAX)
		return -ERANGE;
	/* POSIX ACLs (system.posix_acl_*) would be stored but not enforced
	 * and not reflected in the mode: refuse them, so tools like cp -a
	 * fall back to chmod, as on a filesystem mounted with noacl. */
	if (set && !strncmp(name, "system.", 7))
		return -EOPNOTSUPP;
	if (size > XATTR_VALUE_MAX)
		return -E2BIG;
	if (flags & ~(BR_FS_XATTR_CREATE | BR_FS_XATTR_REPLACE))
		return -EINVAL;
	err = get(fs, ino, &in);
	if (err)
		return err;
	/* removing one gives space back: it may use the reserve */
	if (set)
		err = meta_room(fs, len, &got);
	rec = err ? NULL : calloc(1, len);
	if (!rec) {
		ungrant(fs, got);
		unpin(fs, in);
		return err ? err : -ENOMEM;
	}
	pthread_mutex_lock(il);
	rdlock(fs);
	x = br_xattr_find(&in->xattrs, name);
	if (!set && !x)
		err = -ENODATA;
	else if (x && (flags & BR_FS_XATTR_CREATE))
		err = -EEXIST;
	else if (!x && (flags & BR_FS_XATTR_REPLACE))
		err = -ENODATA;
	unlock(fs);
	if (!err) {
		rec_init(&rec->h, set ? BR_REC_XATTR_SET : BR_REC_XATTR_DEL,
			 len, ino);
		rec->time = fs_time_put(now());
		rec->name_len = br_le16_put((uint16_t)nl);
		rec->value_len = br_le32_put((uint32_t)size);
		memcpy(rec + 1, name, nl);
		if (size)
			memcpy((char *)(rec + 1) + nl, value, size);
		err = log_record(fs, rec, len, NULL);
	}
	pthread_mutex_unlock(il);
	ungrant(fs, got);
	unpin(fs, in);
	free(rec);
	return err;
}

int br_fs_setxattr(struct br_fs *fs, uint64_t ino, const char *name,
		   const void *value, size_t size, int flags)
{
	return xattr_log(fs, ino, name, value, size, flags, true);
}

int br_fs_removexattr(struct br_fs *fs, uint64_t ino, const char *name)
{
	return xattr_log(fs, ino, name, NULL, 0, 0, false);
}

/* The text of the root's virtual xattr BR_STATS_XATTR; snprintf's
 * return convention. */
static int stats_text(struct br_fs *fs, char *buf, size_t size)
{
	struct br_store_stats ss = { 0 };
	struct br_cleaner_stats cs = { 0 };
	struct br_seg_space sp = { 0 };
	struct br_ckpt_stats ck = { 0 };
	uint64_t user = atomic_load_explicit(&fs->user_bytes,
					     memory_order_relaxed);
	uint64_t seg = fs->sb.seg_size;

	if (fs->store)
		br_store_stats(fs->store, &ss);
	if (fs->segs)
		br_seg_space(fs->segs, &sp);
	br_cleaner_stats(fs, &cs);
	if (fs->ckpt)
		br_ckpt_stats(fs, &ck);
	/* the cleaner's second head is written beside the store */
	ss.bytes += cs.copied_bytes;
	return snprintf(buf, size,
		"free_segments %llu\n" "total_segments %llu\n"
		"live_ratio %.3f\n" "user_bytes %llu\n" "device_bytes %llu\n"
		"write_amplification %.3f\n" "cleaner %s\n"
		"cleaner_runs %llu\n" "cleaned_segments %llu\n"
		"moved_bytes %llu\n" "cleaner_copied_bytes %llu\n"
		"cleaner_ckpt_bytes %llu\n" "device_flushes %llu\n"
		"log_buffers %llu\n" "checkpoints %llu\n"
		"checkpoint_blob_bytes %llu\n" "checkpoint_guess_bytes %llu\n"
		"user_reserve_segments %llu\n" "dead_segments %llu\n"
		"checkpoint_wait_segments %llu\n" "open_segments %llu\n"
		"cleaner_unreadable_segments %llu\n",
		(unsigned long long)sp.free_segs,
		(unsigned long long)sp.log_segs,
		sp.log_segs ? (double)sp.live_bytes / ((double)sp.log_segs * seg) : 0,
		(unsigned long long)user, (unsigned long long)ss.bytes,
		user ? (double)ss.bytes / (double)user : 0,
		fs->cleaner ? "on" : "off",
		(unsigned long long)cs.runs,
		(unsigned long long)cs.cleaned_segments,
		(unsigned long long)cs.moved_bytes,
		(unsigned long long)cs.copied_bytes,
		(unsigned long long)cs.ckpt_bytes,
		(unsigned long long)ss.dev_flushes,
		(unsigned long long)ss.buffers,
		(unsigned long long)ck.written,
		(unsigned long long)ck.last_blob_bytes,
		(unsigned long long)br_ckpt_guess(fs),
		(unsigned long long)fs_user_reserve(fs),
		(unsigned long long)sp.dead_segs,
		(unsigned long long)sp.ckpt_segs,
		(unsigned long long)sp.open_segs,
		(unsigned long long)cs.unreadable);
}

ssize_t br_fs_getxattr(struct br_fs *fs, uint64_t ino, const char *name,
		       void *buf, size_t size)
{
	struct br_inode *in;
	struct br_xattr *x;
	ssize_t n;

	if (strlen(name) > BR_NAME_MAX)
		return -ERANGE;
	if (ino == BR_ROOT_INO && !strcmp(name, BR_STATS_XATTR)) {
		char text[1024];
		int len = stats_text(fs, text, sizeof(text));

		if (size == 0)
			return len;
		if ((size_t)len > size)
			return -ERANGE;
		memcpy(buf, text, (size_t)len);
		return len;
	}
	rdlock(fs);
	in = find(fs, ino);
	x = in ? br_xattr_find(&in->xattrs, name) : NULL;
	if (!in)
		n = -ENOENT;
	else if (!x)
		n = -ENODATA;
	else if (size == 0)
		n = x->size;
	else if (size < x->size)
		n = -ERANGE;
	else {
		memcpy(buf, x->value, x->size);
		n = x->size;
	}
	unlock(fs);
	return n;
}

ssize_t br_fs_listxattr(struct br_fs *fs, uint64_t ino, char *buf,
			size_t size)
{
	struct br_inode *in;
	ssize_t n;

	rdlock(fs);
	in = find(fs, ino);
	n = in ? br_xattr_list(&in->xattrs, buf, size) : -ENOENT;
	unlock(fs);
	return n;
}
