/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared by the tests that drive core/fsys directly (test_fsys,
 * test_checkpoint): a formatted image in the test's temporary directory,
 * cmocka setup/teardown/remount, file helpers, and a snapshot of the whole
 * tree (names, attributes, contents) to compare across remounts.
 *
 * Before including: define IMG_SIZE, ROOT and FSTEST_NAME (the image's
 * name prefix), include cmocka.h, brtest.h, fsys.h and super.h, and declare
 *   static struct br_fs *mount_img(const char *path);
 */
#ifndef BR_FSTEST_H
#define BR_FSTEST_H

#include <uuid/uuid.h>

static char img[4096];
static const struct br_cred cred = { 1000, 1000 };

static inline int format_image(const char *path, uint64_t size)
{
	return br_format_file(path, size, BR_SEG_SIZE_DEFAULT,
			      BR_BUF_SIZE_DEFAULT, NULL, 0);
}

static inline int setup(void **state)
{
	int fd;

	snprintf(img, sizeof(img), "%s/" FSTEST_NAME ".XXXXXX", br_test_dir());
	fd = mkstemp(img);
	if (fd < 0)
		return -1;
	close(fd);
	if (format_image(img, IMG_SIZE))
		return -1;
	*state = mount_img(img);
	return 0;
}

static inline int teardown(void **state)
{
	if (*state)
		br_fs_close(*state);
	unlink(img);
	return 0;
}

static inline struct br_fs *remount(void **state)
{
	assert_int_equal(br_fs_close(*state), 0);
	*state = mount_img(img);
	return *state;
}

/* ---- helpers ---- */

static inline uint64_t mkfile(struct br_fs *fs, uint64_t dir, const char *name)
{
	struct stat st;

	assert_int_equal(br_fs_mknod(fs, dir, name, S_IFREG | 0644, 0, &cred, &st), 0);
	return st.st_ino;
}

static inline uint64_t mkdir_(struct br_fs *fs, uint64_t dir, const char *name)
{
	struct stat st;

	assert_int_equal(br_fs_mkdir(fs, dir, name, 0755, &cred, &st), 0);
	return st.st_ino;
}

static inline uint64_t ino_of(struct br_fs *fs, uint64_t dir, const char *name)
{
	struct stat st;
	int err = br_fs_lookup(fs, dir, name, &st);

	if (err)
		return 0;
	br_fs_forget(fs, st.st_ino, 1);
	return st.st_ino;
}

static inline void fill_pattern(uint8_t *b, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((seed + i) * 2654435761u >> 13);
}

static inline void write_all(struct br_fs *fs, uint64_t ino, const void *b, size_t n,
			     uint64_t off)
{
	assert_int_equal(br_fs_write(fs, ino, b, n, off), (ssize_t)n);
}

static inline void check_read(struct br_fs *fs, uint64_t ino, const uint8_t *want,
			      size_t n, uint64_t off)
{
	uint8_t *got = malloc(n + 1);

	assert_int_equal(br_fs_read(fs, ino, got, n, off), (ssize_t)n);
	assert_memory_equal(got, want, n);
	free(got);
}

/* ---- a snapshot of the whole tree, compared across remounts ---- */

struct snap {
	char *text;
	size_t len, cap;
};

static inline void snap_add(struct snap *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->len + (size_t)n + 1 > s->cap) {
		s->cap = (s->len + (size_t)n + 1) * 2;
		s->text = realloc(s->text, s->cap);
	}
	memcpy(s->text + s->len, line, (size_t)n + 1);
	s->len += (size_t)n;
}

static inline void copy_name(char dst[256], const char *src)
{
	size_t n = strnlen(src, 255);

	memcpy(dst, src, n);
	dst[n] = 0;
}

struct names {
	char name[1024][256];
	uint64_t ino[1024];
	int n;
};

static inline int collect(void *ctx, const char *name, uint64_t ino, uint32_t type,
			  uint64_t next)
{
	struct names *nm = ctx;

	(void)type;
	(void)next;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (nm->n >= 1024)
		return 1;	/* no assert under the map lock */
	copy_name(nm->name[nm->n], name);
	nm->ino[nm->n++] = ino;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static inline void snap_tree(struct br_fs *fs, uint64_t ino, const char *path,
			     struct snap *s)
{
	struct stat st;
	char buf[4096];

	assert_int_equal(br_fs_getattr(fs, ino, &st), 0);
	snap_add(s, "%s ino=%llu mode=%o nlink=%lu uid=%u gid=%u size=%lld blocks=%lld mtime=%lld.%09ld ctime=%lld.%09ld\n",
		 path, (unsigned long long)ino, st.st_mode, (unsigned long)st.st_nlink,
		 st.st_uid, st.st_gid, (long long)st.st_size, (long long)st.st_blocks,
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
		 (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	ssize_t xl = br_fs_listxattr(fs, ino, buf, sizeof(buf));

	assert_true(xl >= 0);
	{
		/* sort names: hash order differs between runs */
		char names[32][256];
		int nn = 0;

		for (char *p = buf; p < buf + xl; p += strlen(p) + 1)
			copy_name(names[nn++], p);
		qsort(names, (size_t)nn, 256, cmp_str);
		for (int i = 0; i < nn; i++) {
			char v[512];
			ssize_t vl = br_fs_getxattr(fs, ino, names[i], v, sizeof(v) - 1);

			assert_true(vl >= 0);
			v[vl] = 0;
			snap_add(s, "  xattr %s=%s\n", names[i], v);
		}
	}
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = br_fs_readlink(fs, ino, buf, sizeof(buf) - 1);

		assert_true(n > 0);
		buf[n] = 0;
		snap_add(s, "  -> %s\n", buf);
	} else if (S_ISREG(st.st_mode)) {
		uint32_t crc = 0;
		uint64_t off = 0, size = (uint64_t)st.st_size;
		uint8_t *b = malloc(1 << 20);

		while (off < size) {
			size_t n = size - off < (1 << 20) ? size - off : (1 << 20);

			assert_int_equal(br_fs_read(fs, ino, b, n, off), (ssize_t)n);
			crc = br_crc32c(crc, b, n);
			off += n;
		}
		free(b);
		snap_add(s, "  crc=%08x\n", crc);
	} else if (S_ISDIR(st.st_mode)) {
		struct names *nm = calloc(1, sizeof(*nm));

		assert_int_equal(br_fs_readdir(fs, ino, 0, collect, nm), 0);
		/* children in name order, keeping ino alongside */
		for (int i = 0; i < nm->n; i++)
			for (int j = i + 1; j < nm->n; j++)
				if (strcmp(nm->name[i], nm->name[j]) > 0) {
					char t[256];
					uint64_t ti = nm->ino[i];

					memcpy(t, nm->name[i], 256);
					memcpy(nm->name[i], nm->name[j], 256);
					memcpy(nm->name[j], t, 256);
					nm->ino[i] = nm->ino[j];
					nm->ino[j] = ti;
				}
		for (int i = 0; i < nm->n; i++) {
			char sub[4096];

			snprintf(sub, sizeof(sub), "%s/%s", path, nm->name[i]);
			snap_tree(fs, nm->ino[i], sub, s);
		}
		free(nm);
	}
}

static inline char *snapshot(struct br_fs *fs)
{
	struct snap s = { 0 };

	snap_tree(fs, ROOT, "", &s);
	return s.text;
}

static inline void assert_same_after_remount(void **state)
{
	char *a = snapshot(*state), *b;

	remount(state);
	b = snapshot(*state);
	if (strcmp(a, b))
		fprintf(stderr, "before:\n%s\nafter:\n%s\n", a, b);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static inline void copy_image(const char *from, const char *to)
{
	assert_int_equal(br_test_copy(from, to), 0);
}

#endif /* BR_FSTEST_H */
