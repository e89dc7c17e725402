/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The in-memory map: inodes, directory entries, extended attributes and the
 * per-inode extent map.  Pure data structures: no I/O, no locks (the caller,
 * core/fsys, serialises access; see struct br_fs for the lock order).
 *
 * Inodes live in a uthash table keyed by inode number.  Inode numbers are
 * never reused (a 64-bit counter), so a record in the log that names an
 * inode that has since been deleted can simply be ignored by replay.
 *
 * Directories: a uthash table keyed by name, plus an array of
 * (cookie, entry) in cookie order.  Every entry gets the next value of a
 * per-directory counter when it is added (cookies 1 and 2 are "." and "..",
 * entries start at 3).  readdir resumes after a cookie with a binary search
 * in the array, so its offsets stay valid while entries are added and
 * removed: a removed entry leaves a tombstone (d == NULL) that keeps its
 * cookie until the array is compacted (when tombstones outnumber live
 * entries), and compaction keeps the order.  An entry that is neither added
 * nor removed during a readdir pass is returned exactly once.
 *
 * Extents: file data is described by extents {file offset, length,
 * location} kept in 1 MiB chunks of the file (a uthash table keyed by
 * offset >> BR_CHUNK_SHIFT); each chunk holds a sorted array of
 * non-overlapping extents, and an extent never crosses a chunk boundary.
 * Inserting a range replaces (trims, splits or drops) whatever it overlaps;
 * an extent that continues its left neighbour both in the file and in the
 * log is merged with it.  Memory is proportional to the number of extents
 * (fragmentation), not to the bytes stored; a chunk with no extents is freed.
 *
 * A location is either
 *   pending  {ring slot idx, buffer generation seq, byte offset in buffer}:
 *            the bytes still sit in a ring buffer whose write has not
 *            completed; readers copy them from the slot, or
 *   durable  {log byte address}: the bytes are on disk.
 * br_extmap_complete() switches the pending extents of one buffer to
 * durable once its write completed.
 */
#ifndef BR_MAP_H
#define BR_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <uthash.h>

#define BR_CHUNK_SHIFT 20			/* 1 MiB of file per chunk */
/* Largest file size (and end of any extent): off_t's range.  The map
 * refuses anything beyond, so chunk arithmetic can never wrap. */
#define BR_MAX_FILE_SIZE ((uint64_t)INT64_MAX)
#define BR_CHUNK_SIZE (1ull << BR_CHUNK_SHIFT)
#define BR_NAME_MAX 255				/* bytes in a file name */
#define BR_ROOT_INO 1ull

enum br_ext_kind {
	BR_EXT_DURABLE = 1,	/* v = log byte address of the first byte */
	BR_EXT_PENDING = 2,	/* v = buffer generation, idx/boff = where */
};

/* Where the bytes of an extent are. */
struct br_loc {
	uint8_t kind;		/* enum br_ext_kind */
	uint8_t idx;		/* pending: ring slot */
	uint32_t boff;		/* pending: byte offset inside the buffer */
	uint64_t v;		/* durable: log address; pending: generation */
};

struct br_extent {
	uint64_t off;		/* file offset of the first byte */
	uint64_t v;		/* see struct br_loc */
	uint32_t len;		/* bytes, 1..BR_CHUNK_SIZE */
	uint32_t boff;
	uint8_t kind;
	uint8_t idx;
};

struct br_chunk {
	uint64_t key;		/* file offset >> BR_CHUNK_SHIFT */
	uint32_t n, cap;	/* extents used / allocated */
	struct br_extent *ext;	/* sorted by off, non-overlapping */
	UT_hash_handle hh;
};

struct br_segtab;

struct br_extmap {
	struct br_chunk *chunks;	/* uthash by key */
	uint64_t bytes;			/* sum of extent lengths */
	uint64_t next;			/* number of extents */
	/* Segment usage kept exact here (core/segment.h): every durable
	 * byte that enters or leaves this map is added to / subtracted from
	 * it.  NULL: no accounting (set from br_map.segs at inode creation). */
	struct br_segtab *segs;
};

/* Location of the byte `delta` bytes into the extent. */
struct br_loc br_extent_loc(const struct br_extent *e, uint64_t delta);

/* Map [off, off+len) to loc (loc describes byte `off`; the rest follows
 * contiguously), replacing what was there.  0 or -ENOMEM (the map is then
 * unchanged for the chunk that failed; earlier chunks are already done). */
int br_extmap_insert(struct br_extmap *m, uint64_t off, uint64_t len,
		     const struct br_loc *loc);

/* Drop every mapping in [off, off+len) (len UINT64_MAX - off or more: to
 * the end).  0 or -ENOMEM (splitting an extent needs a slot). */
int br_extmap_punch(struct br_extmap *m, uint64_t off, uint64_t len);

/* Call fn for every piece of [off, off+len) in file order: an extent
 * piece (e != NULL, the piece starts `delta` bytes into e) or a hole
 * (e == NULL).  Stops early and returns fn's value if it is nonzero. */
typedef int (*br_extmap_fn)(void *ctx, uint64_t off, uint64_t len,
			    const struct br_extent *e, uint64_t delta);
int br_extmap_walk(const struct br_extmap *m, uint64_t off, uint64_t len,
		   br_extmap_fn fn, void *ctx);

/* First offset >= off that is data (want_data) or a hole, below `size`;
 * -ENXIO if off >= size or (want_data) no data follows.  A hole search
 * always succeeds: the end of file counts as a hole. */
int br_extmap_seek(const struct br_extmap *m, uint64_t off, uint64_t size,
		   bool want_data, uint64_t *res);

/* Bytes of [off, off+len) that are mapped DURABLE at exactly
 * old + (byte - off): what a copy of the bytes that were at log address
 * `old` still holds of the file. */
uint64_t br_extmap_at(const struct br_extmap *m, uint64_t off, uint64_t len,
		      uint64_t old);

/* Map every piece of [off, off+len) that is DURABLE at exactly
 * old + (byte - off) to new_addr + (byte - off) (the cleaner moved it,
 * format.h BR_REC_RELOC); other pieces and holes stay.  *moved (may be
 * NULL) grows by the bytes switched.  0 or -ENOMEM (pieces before the one
 * that failed are switched). */
int br_extmap_relocate(struct br_extmap *m, uint64_t off, uint64_t len,
		       uint64_t old, uint64_t new_addr, uint64_t *moved);

/* The buffer of generation `seq` in ring slot `idx` landed at log address
 * `addr`: make its extents in chunk `key` durable.  Returns how many
 * extents switched. */
unsigned br_extmap_complete(struct br_extmap *m, uint64_t key, unsigned idx,
			    uint64_t seq, uint64_t addr);

void br_extmap_free(struct br_extmap *m);

/* ---- directories ---- */

struct br_dirent {
	UT_hash_handle hh;	/* by name */
	uint64_t ino;
	uint64_t cookie;	/* readdir offset, unique in the directory */
	size_t slot;		/* index in br_dir.order */
	uint32_t type;		/* S_IFMT bits of the target */
	uint16_t namelen;
	char name[];		/* namelen bytes + NUL */
};

struct br_dir_slot {
	uint64_t cookie;
	struct br_dirent *d;	/* NULL: removed (tombstone) */
};

struct br_dir {
	struct br_dirent *by_name;	/* uthash by name */
	struct br_dir_slot *order;	/* cookie order */
	size_t n, cap;			/* slots used / allocated */
	size_t live;			/* entries (non-tombstones) */
	uint64_t next_cookie;		/* starts at 3 */
};

#define BR_DIR_FIRST_COOKIE 3

void br_dir_init(struct br_dir *d);
/* -EEXIST, -ENOMEM, or 0 with *out (may be NULL) set. */
int br_dir_add(struct br_dir *d, const char *name, size_t len, uint64_t ino,
	       uint32_t type, struct br_dirent **out);
struct br_dirent *br_dir_find(const struct br_dir *d, const char *name,
			      size_t len);
/* Unlink and free de. */
void br_dir_remove(struct br_dir *d, struct br_dirent *de);
/* The first entry whose cookie is > after, or NULL. */
struct br_dirent *br_dir_next(const struct br_dir *d, uint64_t after);
void br_dir_free(struct br_dir *d);

/* ---- extended attributes ---- */

struct br_xattr {
	UT_hash_handle hh;	/* by name */
	void *value;
	uint32_t size;
	uint16_t namelen;
	char name[];		/* namelen bytes + NUL */
};

#define BR_XATTR_CREATE 1	/* as XATTR_CREATE */
#define BR_XATTR_REPLACE 2	/* as XATTR_REPLACE */

/* 0, -EEXIST (CREATE), -ENODATA (REPLACE), -ENOMEM. */
int br_xattr_set(struct br_xattr **head, const char *name, const void *value,
		 uint32_t size, int flags);
struct br_xattr *br_xattr_find(struct br_xattr *const *head, const char *name);
/* 0 or -ENODATA. */
int br_xattr_remove(struct br_xattr **head, const char *name);
/* NUL-separated names: bytes needed (size 0), -ERANGE if size is too small. */
ssize_t br_xattr_list(struct br_xattr *const *head, char *buf, size_t size);
void br_xattr_free_all(struct br_xattr **head);

/* ---- inodes ---- */

struct br_inode {
	UT_hash_handle hh;	/* by ino, in br_map.inodes */
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t rdev;
	uint64_t size;		/* bytes; directories: see br_fs_getattr */
	struct timespec atime, mtime, ctime;
	uint64_t parent;	/* directories: the parent's ino */
	uint64_t nlookup;	/* kernel references (lookup counts) */
	uint64_t pos;		/* log position of the last record about it */
	uint64_t ckpt_gen;	/* core/checkpoint: the checkpoint snapshot
				 * that already holds this inode */
	unsigned pins;		/* operations in flight (see core/fsys) */
	bool attr_dirty;	/* times changed since the last inode record */
	bool data_changed;	/* data changed since the last open (keep_cache) */
	struct br_xattr *xattrs;
	struct br_extmap ext;	/* regular files */
	struct br_dir dir;	/* directories */
	char *target;		/* symlinks: NUL-terminated */
	void *priv;		/* owned by core/fsys (per-inode lock) */
};

struct br_map {
	struct br_inode *inodes;	/* uthash by ino */
	uint64_t next_ino;		/* never reused */
	_Atomic uint64_t ninodes;	/* atomic: br_ckpt_guess reads it
					 * without map_lock */
	_Atomic int64_t var_bytes;	/* names, xattr names and values,
					 * symlink targets: what a blob holds
					 * beyond the fixed part of inodes
					 * and entries, kept by core/apply
					 * and br_map_inode_free (not counted
					 * for what a checkpoint loads: only
					 * changes matter, br_ckpt_guess) */
	struct br_segtab *segs;		/* given to every new inode's extent
					 * map (NULL: none); br_map_init
					 * clears it */
};

/* What a name or a symlink target of n bytes, or an xattr of an n-byte
 * name and value (after its 8-byte header), adds to var_bytes: the blob
 * pads each to 8 (core/format.h, br_ckpt_dirent, br_ckpt_xattr). */
static inline int64_t br_var_len(uint64_t n)
{
	return (int64_t)((n + 7) & ~(uint64_t)7);
}
#define BR_VAR_XATTR(nl, vl) br_var_len(8 + (uint64_t)(nl) + (vl))

void br_map_init(struct br_map *m);
/* A new inode with nlink 0 and everything else zero except ino and mode.
 * -EEXIST, -ENOMEM. */
int br_map_inode_new(struct br_map *m, uint64_t ino, uint32_t mode,
		     struct br_inode **out);
struct br_inode *br_map_inode_find(const struct br_map *m, uint64_t ino);
/* Unhash and free (the caller drops priv first). */
void br_map_inode_free(struct br_map *m, struct br_inode *in);
/* Free every inode; calls release(priv) for each non-NULL priv. */
void br_map_free(struct br_map *m, void (*release)(void *priv));

#endif /* BR_MAP_H */
