/*
 * errs: every error path of the POSIX interface on a mounted filesystem, with
 * the exact errno; plus sparse files (zeros, SEEK_DATA/SEEK_HOLE), a 5 GiB
 * sparse file with data beyond 4 GiB, and a file of 10 000 small extents.
 *
 *   errs MOUNTPOINT            run every check; leaves MOUNTPOINT/errs/ with
 *                              files that --verify checks again
 *   errs MOUNTPOINT --verify   after a remount: the files the first run left
 *                              (sparse, 5 GiB, 10 000 extents, the exchanged
 *                              pair) still hold exactly what was written
 *
 * Prints one line per failed check, and "N passed, N failed" at the end;
 * exit status 0 only when nothing failed.  Correct for any POSIX filesystem
 * (Linux errno conventions where POSIX allows several: unlink(dir) is
 * EISDIR, rmdir(non-empty) is ENOTEMPTY).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int passed, failed;
static char base[PATH_MAX];

static void ok(int cond, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void ok(int cond, int line, const char *fmt, ...)
{
	if (cond) {
		passed++;
		return;
	}
	failed++;
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL line %d: ", line);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "?";
}

/* call must return -1 with errno == err */
#define EXPECT_ERR(call, err)                                                      \
	do {                                                                       \
		errno = 0;                                                         \
		long r_ = (long)(call);                                            \
		int e_ = errno;                                                    \
		ok(r_ == -1 && e_ == (err), __LINE__,                              \
		   "%s: expected -1/%s, got %ld/%s", #call, ename(err), r_,          \
		   r_ == -1 ? ename(e_) : "-");                                     \
		if (r_ >= 0 && !strncmp(#call, "open(", 5))                  \
			close((int)r_);                                            \
	} while (0)

/* call must succeed (return >= 0); yields the value */
#define EXPECT_OK(call)                                                            \
	({                                                                         \
		errno = 0;                                                         \
		long r_ = (long)(call);                                            \
		int e_ = errno;                                                    \
		ok(r_ >= 0, __LINE__, "%s: expected success, got -1/%s", #call,     \
		   ename(e_));                                                     \
		r_;                                                                \
	})

#define CHECK(cond, ...) ok(!!(cond), __LINE__, __VA_ARGS__)

static const char *P(const char *rel)
{
	static char buf[8][PATH_MAX];
	static int i;
	char *b = buf[i++ % 8];
	if (snprintf(b, PATH_MAX, "%s/%s", base, rel) >= PATH_MAX)
		abort();
	return b;
}

static int mkfile(const char *rel, const char *content)
{
	int fd = open(P(rel), O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, content, strlen(content));
	close(fd);
	return n == (ssize_t)strlen(content) ? 0 : -1;
}

static int readall(const char *rel, char *buf, size_t cap)
{
	int fd = open(P(rel), O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

static ino_t ino_of(const char *rel)
{
	struct stat st;
	return lstat(P(rel), &st) == 0 ? st.st_ino : 0;
}

/* deterministic content: byte at absolute file offset off for file `seed` */
static void fill(unsigned char *buf, size_t len, uint64_t off, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) / 8 * 0x9E3779B97F4A7C15ull ^ seed;
		x ^= x >> 29;
		x *= 0xBF58476D1CE4E5B9ull;
		x ^= x >> 32;
		buf[i] = (unsigned char)(x >> (8 * ((off + i) % 8)));
	}
}

static int check_region(int fd, uint64_t off, size_t len, uint64_t seed, int zeros)
{
	static unsigned char got[1 << 20], want[1 << 20];
	while (len) {
		size_t n = len < sizeof got ? len : sizeof got;
		ssize_t r = pread(fd, got, n, (off_t)off);
		if (r != (ssize_t)n)
			return -1;
		if (zeros)
			memset(want, 0, n);
		else
			fill(want, n, off, seed);
		if (memcmp(got, want, n))
			return -2;
		off += n;
		len -= n;
	}
	return 0;
}

static int write_region(int fd, uint64_t off, size_t len, uint64_t seed)
{
	static unsigned char buf[1 << 20];
	while (len) {
		size_t n = len < sizeof buf ? len : sizeof buf;
		fill(buf, n, off, seed);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- errno checks ------------------------------------------------------------ */

static void test_enoent(void)
{
	struct stat st;
	char buf[64];
	EXPECT_ERR(open(P("nope"), O_RDONLY), ENOENT);
	EXPECT_ERR(stat(P("nope"), &st), ENOENT);
	EXPECT_ERR(lstat(P("nope"), &st), ENOENT);
	EXPECT_ERR(unlink(P("nope")), ENOENT);
	EXPECT_ERR(rmdir(P("nope")), ENOENT);
	EXPECT_ERR(rename(P("nope"), P("nope2")), ENOENT);
	EXPECT_ERR(link(P("nope"), P("nope2")), ENOENT);
	EXPECT_ERR(readlink(P("nope"), buf, sizeof buf), ENOENT);
	EXPECT_ERR(truncate(P("nope"), 0), ENOENT);
	EXPECT_ERR(chmod(P("nope"), 0600), ENOENT);
	EXPECT_ERR(open(P("nodir/file"), O_CREAT | O_WRONLY, 0644), ENOENT);
	EXPECT_ERR(mkdir(P("nodir/sub"), 0755), ENOENT);
	EXPECT_ERR(opendir(P("nope")) ? 0 : -1, ENOENT);
	/* a dangling symlink followed */
	EXPECT_OK(symlink("target-missing", P("dangling")));
	EXPECT_ERR(open(P("dangling"), O_RDONLY), ENOENT);
	EXPECT_ERR(stat(P("dangling"), &st), ENOENT);
	CHECK(lstat(P("dangling"), &st) == 0 && S_ISLNK(st.st_mode), "lstat of a dangling symlink");
	/* unlinked name is gone, the open fd still works */
	EXPECT_OK(mkfile("gone", "still here"));
	int fd = (int)EXPECT_OK(open(P("gone"), O_RDWR));
	EXPECT_OK(unlink(P("gone")));
	EXPECT_ERR(stat(P("gone"), &st), ENOENT);
	if (fd >= 0) {
		char b[32] = {0};
		CHECK(pread(fd, b, sizeof b - 1, 0) == 10 && !strcmp(b, "still here"),
		      "read of an unlinked open file: got '%s'", b);
		CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0, "fstat of unlinked file: nlink %lu",
		      (unsigned long)st.st_nlink);
		CHECK(pwrite(fd, "X", 1, 0) == 1, "write to an unlinked open file");
		close(fd);
	}
	EXPECT_ERR(getxattr(P("nope"), "user.x", buf, sizeof buf), ENOENT);
}

static void test_eexist(void)
{
	EXPECT_OK(mkdir(P("d"), 0755));
	EXPECT_OK(mkfile("f", "f"));
	EXPECT_ERR(mkdir(P("d"), 0755), EEXIST);
	EXPECT_ERR(mkdir(P("f"), 0755), EEXIST);
	EXPECT_ERR(link(P("f"), P("d")), EEXIST);
	EXPECT_OK(mkfile("g", "g"));
	EXPECT_ERR(link(P("f"), P("g")), EEXIST);
	EXPECT_ERR(symlink("x", P("f")), EEXIST);
	EXPECT_ERR(open(P("f"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	EXPECT_ERR(open(P("d"), O_CREAT | O_EXCL | O_RDONLY, 0644), EEXIST);
	EXPECT_ERR(open(P("dangling"), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	EXPECT_ERR(mknod(P("f"), S_IFIFO | 0644, 0), EEXIST);
	/* the failed attempts changed nothing */
	char buf[16];
	CHECK(readall("f", buf, sizeof buf) == 1 && buf[0] == 'f', "f unchanged after EEXISTs");
	CHECK(readall("g", buf, sizeof buf) == 1 && buf[0] == 'g', "g unchanged after link EEXIST");
	/* O_CREAT without O_EXCL on an existing file opens it */
	int fd = (int)EXPECT_OK(open(P("f"), O_CREAT | O_WRONLY, 0644));
	if (fd >= 0)
		close(fd);
	CHECK(readall("f", buf, sizeof buf) == 1, "O_CREAT without O_EXCL does not truncate");
	/* xattr create/replace flags */
	EXPECT_OK(setxattr(P("f"), "user.a", "1", 1, XATTR_CREATE));
	EXPECT_ERR(setxattr(P("f"), "user.a", "2", 1, XATTR_CREATE), EEXIST);
	EXPECT_ERR(setxattr(P("f"), "user.b", "2", 1, XATTR_REPLACE), ENODATA);
	EXPECT_ERR(getxattr(P("f"), "user.b", buf, sizeof buf), ENODATA);
	EXPECT_ERR(removexattr(P("f"), "user.b"), ENODATA);
	EXPECT_OK(setxattr(P("f"), "user.long", "0123456789", 10, 0));
	EXPECT_ERR(getxattr(P("f"), "user.long", buf, 4), ERANGE);
	CHECK(getxattr(P("f"), "user.long", NULL, 0) == 10, "getxattr size query");
	CHECK(listxattr(P("f"), NULL, 0) >= (ssize_t)sizeof "user.a" + (ssize_t)sizeof "user.long",
	      "listxattr size query");
	EXPECT_ERR(listxattr(P("f"), buf, 2), ERANGE);
}

static void test_enotempty(void)
{
	EXPECT_OK(mkdir(P("ne"), 0755));
	EXPECT_OK(mkfile("ne/x", "x"));
	EXPECT_ERR(rmdir(P("ne")), ENOTEMPTY);
	EXPECT_OK(mkdir(P("ne2"), 0755));
	EXPECT_ERR(rename(P("ne2"), P("ne")), ENOTEMPTY);
	struct stat st;
	CHECK(stat(P("ne/x"), &st) == 0, "ne/x survives failed rmdir/rename");
	/* a dir with only a subdir is not empty either */
	EXPECT_OK(mkdir(P("ne3"), 0755));
	EXPECT_OK(mkdir(P("ne3/sub"), 0755));
	EXPECT_ERR(rmdir(P("ne3")), ENOTEMPTY);
	/* rename an empty dir over an empty dir works */
	EXPECT_OK(mkdir(P("e1"), 0755));
	EXPECT_OK(mkdir(P("e2"), 0755));
	EXPECT_OK(rename(P("e1"), P("e2")));
	EXPECT_ERR(stat(P("e1"), &st), ENOENT);
	/* after emptying, rmdir works */
	EXPECT_OK(unlink(P("ne/x")));
	EXPECT_OK(rmdir(P("ne")));
	EXPECT_OK(rmdir(P("ne3/sub")));
	EXPECT_OK(rmdir(P("ne3")));
}

static void test_eisdir(void)
{
	EXPECT_ERR(open(P("d"), O_WRONLY), EISDIR);
	EXPECT_ERR(open(P("d"), O_RDWR), EISDIR);
	EXPECT_ERR(open(P("d"), O_WRONLY | O_CREAT, 0644), EISDIR);
	EXPECT_ERR(unlink(P("d")), EISDIR);
	EXPECT_ERR(rename(P("f"), P("d")), EISDIR);
	EXPECT_ERR(truncate(P("d"), 0), EISDIR);
	int fd = (int)EXPECT_OK(open(P("d"), O_RDONLY | O_DIRECTORY));
	if (fd >= 0) {
		char b[8];
		EXPECT_ERR(read(fd, b, sizeof b), EISDIR);
		close(fd);
	}
}

static void test_enotdir(void)
{
	struct stat st;
	EXPECT_ERR(open(P("f/x"), O_RDONLY), ENOTDIR);
	EXPECT_ERR(open(P("f/x"), O_CREAT | O_WRONLY, 0644), ENOTDIR);
	EXPECT_ERR(stat(P("f/x"), &st), ENOTDIR);
	EXPECT_ERR(mkdir(P("f/x"), 0755), ENOTDIR);
	EXPECT_ERR(rmdir(P("f")), ENOTDIR);
	EXPECT_ERR(open(P("f"), O_RDONLY | O_DIRECTORY), ENOTDIR);
	EXPECT_ERR(opendir(P("f")) ? 0 : -1, ENOTDIR);
	EXPECT_OK(mkdir(P("dd"), 0755));
	EXPECT_ERR(rename(P("dd"), P("f")), ENOTDIR);
	EXPECT_ERR(rename(P("f"), P("dd/")), ENOTDIR);
	EXPECT_ERR(rmdir(P("dangling")), ENOTDIR);
}

static void test_enametoolong(void)
{
	char n255[256], n256[257], rel[300];
	memset(n255, 'a', 255);
	n255[255] = 0;
	memset(n256, 'b', 256);
	n256[256] = 0;
	struct stat st;

	snprintf(rel, sizeof rel, "%s", n256);
	EXPECT_ERR(open(P(rel), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
	EXPECT_ERR(mkdir(P(rel), 0755), ENAMETOOLONG);
	EXPECT_ERR(stat(P(rel), &st), ENAMETOOLONG);
	EXPECT_ERR(symlink("x", P(rel)), ENAMETOOLONG);
	EXPECT_ERR(link(P("f"), P(rel)), ENAMETOOLONG);
	EXPECT_ERR(rename(P("f"), P(rel)), ENAMETOOLONG);
	CHECK(stat(P("f"), &st) == 0, "f still there after rename ENAMETOOLONG");

	snprintf(rel, sizeof rel, "%s", n255);
	int fd = (int)EXPECT_OK(open(P(rel), O_CREAT | O_WRONLY, 0644));
	if (fd >= 0)
		close(fd);
	EXPECT_OK(stat(P(rel), &st));
	/* readdir returns the full 255-byte name */
	DIR *d = opendir(base);
	int found = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (!strcmp(de->d_name, n255))
			found = 1;
	if (d)
		closedir(d);
	CHECK(found, "readdir lists the 255-byte name");
	char rel2[300];
	snprintf(rel2, sizeof rel2, "d/%s", n255);
	EXPECT_OK(rename(P(rel), P(rel2)));
	EXPECT_OK(stat(P(rel2), &st));
	EXPECT_OK(unlink(P(rel2)));
	snprintf(rel, sizeof rel, "%.254s", n255);
	EXPECT_OK(mkdir(P(rel), 0755));
	EXPECT_OK(rmdir(P(rel)));
	/* a 1000-byte path of short components is fine */
	char deep[PATH_MAX] = "";
	for (int i = 0; i < 100; i++) {
		strcat(deep, i ? "/abcdefghi" : "abcdefghi");
		if (mkdir(P(deep), 0755) != 0)
			break;
	}
	CHECK(stat(P(deep), &st) == 0 && S_ISDIR(st.st_mode), "100-level deep directory");
}

static void test_einval_rename(void)
{
	struct stat st;
	EXPECT_OK(mkdir(P("r"), 0755));
	EXPECT_OK(mkdir(P("r/sub"), 0755));
	EXPECT_OK(mkdir(P("r/sub/subsub"), 0755));
	EXPECT_ERR(rename(P("r"), P("r/sub/x")), EINVAL);
	EXPECT_ERR(rename(P("r"), P("r/sub/subsub/x")), EINVAL);
	EXPECT_ERR(rename(P("r/sub"), P("r/sub/subsub/y")), EINVAL);
	EXPECT_OK(stat(P("r/sub/subsub"), &st));
	EXPECT_ERR(renameat2(AT_FDCWD, P("f"), AT_FDCWD, P("g"), RENAME_NOREPLACE | RENAME_EXCHANGE),
		   EINVAL);
	EXPECT_ERR(renameat2(AT_FDCWD, P("f"), AT_FDCWD, P("g"), 1u << 30), EINVAL);
	EXPECT_ERR(rmdir(P("r/.")), EINVAL);

	/* RENAME_NOREPLACE */
	EXPECT_OK(mkfile("nr1", "one"));
	EXPECT_OK(mkfile("nr2", "two"));
	EXPECT_ERR(renameat2(AT_FDCWD, P("nr1"), AT_FDCWD, P("nr2"), RENAME_NOREPLACE), EEXIST);
	char buf[16];
	CHECK(readall("nr1", buf, sizeof buf) == 3 && !strcmp(buf, "one"), "NOREPLACE left nr1");
	CHECK(readall("nr2", buf, sizeof buf) == 3 && !strcmp(buf, "two"), "NOREPLACE left nr2");
	EXPECT_OK(renameat2(AT_FDCWD, P("nr1"), AT_FDCWD, P("nr3"), RENAME_NOREPLACE));
	EXPECT_ERR(stat(P("nr1"), &st), ENOENT);
	CHECK(readall("nr3", buf, sizeof buf) == 3 && !strcmp(buf, "one"), "NOREPLACE moved nr1");

	/* RENAME_EXCHANGE: files, file <-> dir, across directories */
	EXPECT_OK(mkfile("x1", "first"));
	EXPECT_OK(mkfile("r/x2", "second!"));
	ino_t i1 = ino_of("x1"), i2 = ino_of("r/x2");
	EXPECT_OK(renameat2(AT_FDCWD, P("x1"), AT_FDCWD, P("r/x2"), RENAME_EXCHANGE));
	CHECK(readall("x1", buf, sizeof buf) == 7 && !strcmp(buf, "second!"), "EXCHANGE: x1 = '%s'", buf);
	CHECK(readall("r/x2", buf, sizeof buf) == 5 && !strcmp(buf, "first"), "EXCHANGE: r/x2 = '%s'", buf);
	CHECK(ino_of("x1") == i2 && ino_of("r/x2") == i1, "EXCHANGE swaps inodes");
	EXPECT_OK(mkdir(P("xd"), 0755));
	EXPECT_OK(mkfile("xd/inside", "in"));
	EXPECT_OK(renameat2(AT_FDCWD, P("x1"), AT_FDCWD, P("xd"), RENAME_EXCHANGE));
	CHECK(stat(P("x1"), &st) == 0 && S_ISDIR(st.st_mode), "EXCHANGE file<->dir: x1 is a dir");
	CHECK(readall("x1/inside", buf, sizeof buf) == 2, "EXCHANGE file<->dir: content follows");
	CHECK(stat(P("xd"), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 7,
	      "EXCHANGE file<->dir: xd is the file");
	EXPECT_ERR(renameat2(AT_FDCWD, P("x1"), AT_FDCWD, P("nope"), RENAME_EXCHANGE), ENOENT);
	/* the pair is checked again after the remount (--verify) */
	EXPECT_OK(mkfile("exA", "AAAA"));
	EXPECT_OK(mkfile("exB", "BB"));
	EXPECT_OK(renameat2(AT_FDCWD, P("exA"), AT_FDCWD, P("exB"), RENAME_EXCHANGE));

	/* plain rename over an existing file replaces it, old inode gone */
	EXPECT_OK(mkfile("ov1", "new"));
	EXPECT_OK(mkfile("ov2", "old"));
	EXPECT_OK(link(P("ov2"), P("ov2link")));
	EXPECT_OK(rename(P("ov1"), P("ov2")));
	CHECK(readall("ov2", buf, sizeof buf) == 3 && !strcmp(buf, "new"), "rename over existing");
	CHECK(stat(P("ov2link"), &st) == 0 && st.st_nlink == 1, "replaced inode's other link: nlink %lu",
	      (unsigned long)st.st_nlink);
	/* rename of a hard link onto its sibling: no-op, both stay */
	EXPECT_OK(link(P("ov2"), P("ov2b")));
	EXPECT_OK(rename(P("ov2"), P("ov2b")));
	CHECK(stat(P("ov2"), &st) == 0 && stat(P("ov2b"), &st) == 0 && st.st_nlink == 2,
	      "rename between two links of one inode is a no-op");
}

static void test_misc(void)
{
	struct stat st;
	/* ELOOP */
	EXPECT_OK(symlink("loop2", P("loop1")));
	EXPECT_OK(symlink("loop1", P("loop2")));
	EXPECT_ERR(open(P("loop1"), O_RDONLY), ELOOP);
	EXPECT_ERR(open(P("dangling"), O_RDONLY | O_NOFOLLOW), ELOOP);
	/* EINVAL */
	int fd = (int)EXPECT_OK(open(P("f"), O_RDWR));
	if (fd >= 0) {
		EXPECT_ERR(ftruncate(fd, -1), EINVAL);
		EXPECT_ERR(lseek(fd, -1, SEEK_SET), EINVAL);
		close(fd);
	}
	/* EBADF on a read-only fd */
	fd = (int)EXPECT_OK(open(P("f"), O_RDONLY));
	if (fd >= 0) {
		EXPECT_ERR(write(fd, "x", 1), EBADF);
		EXPECT_ERR(ftruncate(fd, 0), EINVAL);
		close(fd);
	}
	/* O_TRUNC, O_APPEND */
	EXPECT_OK(mkfile("tr", "0123456789"));
	fd = (int)EXPECT_OK(open(P("tr"), O_WRONLY | O_APPEND));
	if (fd >= 0) {
		lseek(fd, 0, SEEK_SET);
		CHECK(write(fd, "AB", 2) == 2, "append write");
		close(fd);
	}
	char buf[32];
	CHECK(readall("tr", buf, sizeof buf) == 12 && !strcmp(buf, "0123456789AB"), "O_APPEND: '%s'", buf);
	fd = (int)EXPECT_OK(open(P("tr"), O_WRONLY | O_TRUNC));
	if (fd >= 0)
		close(fd);
	CHECK(stat(P("tr"), &st) == 0 && st.st_size == 0, "O_TRUNC empties");
	/* EACCES/EPERM need a non-root user: not checked (tests run as root) */
}

/* ---- sparse files, 5 GiB, 10 000 extents --------------------------------------- */

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)
#define SPARSE_SIZE (20 * MiB)
#define SPARSE_DATA (10 * MiB)
#define SPARSE_LEN (8192)

static const struct { uint64_t off; size_t len; } big_regions[] = {
	{ 0, 4096 },
	{ 4 * GiB - 1000, 5000 },		/* across the 4 GiB boundary */
	{ 4 * GiB + 12345, 3 * MiB + 17 },	/* unaligned, larger than 1 MiB */
	{ 4 * GiB + 512 * MiB, 1 * MiB },
	{ 5 * GiB - 777, 777 },			/* up to the very end */
};
#define BIG_SIZE (5 * GiB)
#define EXT_COUNT 10000

static void sparse_verify(int phase)
{
	struct stat st;
	int fd = open(P("sparse"), O_RDONLY);
	CHECK(fd >= 0, "open sparse (%s)", strerror(errno));
	if (fd < 0)
		return;
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)SPARSE_SIZE, "sparse size %lld",
	      (long long)st.st_size);
	CHECK(check_region(fd, 0, SPARSE_DATA, 0, 1) == 0, "sparse: hole before data reads zeros (%d)", phase);
	CHECK(check_region(fd, SPARSE_DATA, SPARSE_LEN, 11, 0) == 0, "sparse: data (%d)", phase);
	CHECK(check_region(fd, SPARSE_DATA + SPARSE_LEN, SPARSE_SIZE - SPARSE_DATA - SPARSE_LEN, 0, 1) == 0,
	      "sparse: hole after data reads zeros (%d)", phase);
	off_t d = lseek(fd, 0, SEEK_DATA);
	CHECK(d >= (off_t)(SPARSE_DATA - MiB) && d <= (off_t)SPARSE_DATA,
	      "SEEK_DATA(0) = %lld, want within 1 MiB below %llu", (long long)d, SPARSE_DATA);
	off_t h = lseek(fd, SPARSE_DATA, SEEK_HOLE);
	CHECK(h >= (off_t)(SPARSE_DATA + SPARSE_LEN) && h <= (off_t)(SPARSE_DATA + SPARSE_LEN + MiB),
	      "SEEK_HOLE(data) = %lld, want the end of the data (+ < 1 MiB)", (long long)h);
	h = lseek(fd, 0, SEEK_HOLE);
	CHECK(h == 0, "SEEK_HOLE(0) = %lld, want 0 (file starts with a hole)", (long long)h);
	errno = 0;
	d = lseek(fd, SPARSE_DATA + SPARSE_LEN + MiB, SEEK_DATA);
	CHECK(d == -1 && errno == ENXIO, "SEEK_DATA past the last data: %lld/%s, want ENXIO",
	      (long long)d, ename(errno));
	errno = 0;
	d = lseek(fd, SPARSE_SIZE, SEEK_DATA);
	CHECK(d == -1 && errno == ENXIO, "SEEK_DATA at EOF: want ENXIO");
	errno = 0;
	h = lseek(fd, SPARSE_SIZE + 1, SEEK_HOLE);
	CHECK(h == -1 && errno == ENXIO, "SEEK_HOLE beyond EOF: want ENXIO");
	CHECK(st.st_blocks * 512 < (blkcnt_t)(2 * MiB), "sparse file allocates little: st_blocks %lld",
	      (long long)st.st_blocks);
	close(fd);
}

static void sparse_create(void)
{
	int fd = open(P("sparse"), O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0, "create sparse");
	if (fd < 0)
		return;
	CHECK(ftruncate(fd, SPARSE_SIZE) == 0, "ftruncate sparse");
	CHECK(write_region(fd, SPARSE_DATA, SPARSE_LEN, 11) == 0, "write sparse data");
	CHECK(fsync(fd) == 0, "fsync sparse");
	close(fd);
}

static void big_create(void)
{
	int fd = open(P("big5g"), O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0, "create big5g: %s", strerror(errno));
	if (fd < 0)
		return;
	CHECK(ftruncate(fd, BIG_SIZE) == 0, "ftruncate to 5 GiB: %s", strerror(errno));
	for (size_t i = 0; i < sizeof big_regions / sizeof big_regions[0]; i++)
		CHECK(write_region(fd, big_regions[i].off, big_regions[i].len, 1000 + i) == 0,
		      "write big5g region %zu at %llu: %s", i, (unsigned long long)big_regions[i].off,
		      strerror(errno));
	CHECK(fsync(fd) == 0, "fsync big5g");
	close(fd);
}

static void big_verify(int phase)
{
	int fd = open(P("big5g"), O_RDONLY);
	CHECK(fd >= 0, "open big5g");
	if (fd < 0)
		return;
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)BIG_SIZE, "big5g size %lld",
	      (long long)st.st_size);
	uint64_t prev_end = 0;
	for (size_t i = 0; i < sizeof big_regions / sizeof big_regions[0]; i++) {
		uint64_t o = big_regions[i].off;
		/* up to 8 MiB of the hole before each region reads zeros */
		uint64_t z = o - prev_end > 8 * MiB ? o - 8 * MiB : prev_end;
		CHECK(check_region(fd, z, o - z, 0, 1) == 0, "big5g zeros before region %zu (%d)", i, phase);
		CHECK(check_region(fd, o, big_regions[i].len, 1000 + i, 0) == 0,
		      "big5g region %zu at %llu (%d)", i, (unsigned long long)o, phase);
		prev_end = o + big_regions[i].len;
	}
	char c;
	CHECK(pread(fd, &c, 1, BIG_SIZE) == 0, "read at EOF of big5g returns 0");
	CHECK(st.st_blocks * 512 < (blkcnt_t)(64 * MiB), "big5g allocates little: st_blocks %lld",
	      (long long)st.st_blocks);
	close(fd);
}

static void extents_create(void)
{
	int fd = open(P("extents"), O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0, "create extents");
	if (fd < 0)
		return;
	unsigned char buf[4096];
	int bad = 0;
	for (int i = 0; i < EXT_COUNT; i++) {
		uint64_t off = (uint64_t)i * 8192;
		fill(buf, sizeof buf, off, 77);
		if (pwrite(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf)
			bad++;
	}
	CHECK(bad == 0, "10 000 4 KiB writes at every other block: %d failed", bad);
	CHECK(fsync(fd) == 0, "fsync extents");
	close(fd);
}

static void extents_verify(int phase)
{
	int fd = open(P("extents"), O_RDONLY);
	CHECK(fd >= 0, "open extents");
	if (fd < 0)
		return;
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)(EXT_COUNT - 1) * 8192 + 4096,
	      "extents size %lld", (long long)st.st_size);
	int bad_data = 0, bad_hole = 0;
	for (int i = 0; i < EXT_COUNT; i++) {
		uint64_t off = (uint64_t)i * 8192;
		if (check_region(fd, off, 4096, 77, 0))
			bad_data++;
		if (i + 1 < EXT_COUNT && check_region(fd, off + 4096, 4096, 0, 1))
			bad_hole++;
	}
	CHECK(bad_data == 0, "extents: %d of 10 000 data blocks wrong (%d)", bad_data, phase);
	CHECK(bad_hole == 0, "extents: %d of 9 999 holes not zero (%d)", bad_hole, phase);
	/* one big read across all of them equals the block-by-block view */
	size_t len = (size_t)st.st_size;
	unsigned char *all = malloc(len), *want = calloc(1, len);
	if (all && want) {
		for (int i = 0; i < EXT_COUNT; i++)
			fill(want + (size_t)i * 8192, 4096, (uint64_t)i * 8192, 77);
		size_t got = 0;
		while (got < len) {
			ssize_t r = pread(fd, all + got, len - got, (off_t)got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		CHECK(got == len && !memcmp(all, want, len), "extents: one 80 MB read (%d)", phase);
	}
	free(all);
	free(want);
	/* SEEK_DATA/SEEK_HOLE walk: exactly the 10 000 data blocks */
	int regions = 0, wrong = 0;
	off_t pos = 0;
	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h <= d)
			break;
		if (d % 8192 || (h - d != 4096 && h != st.st_size))
			wrong++;
		regions++;
		pos = h;
	}
	CHECK(regions == EXT_COUNT && wrong == 0,
	      "SEEK_DATA/SEEK_HOLE walk found %d data regions (%d misplaced), want 10000 (%d)", regions,
	      wrong, phase);
	close(fd);
}

/* after the remount: everything written by the first run */
static void verify_all(void)
{
	char buf[16];
	struct stat st;
	CHECK(readall("exA", buf, sizeof buf) == 2 && !strcmp(buf, "BB"), "exchanged exA after remount");
	CHECK(readall("exB", buf, sizeof buf) == 4 && !strcmp(buf, "AAAA"), "exchanged exB after remount");
	CHECK(readall("ov2b", buf, sizeof buf) == 3 && stat(P("ov2b"), &st) == 0 && st.st_nlink == 2,
	      "hard links after remount");
	CHECK(stat(P("x1/inside"), &st) == 0, "exchanged dir after remount");
	CHECK(lstat(P("dangling"), &st) == 0 && S_ISLNK(st.st_mode), "dangling symlink after remount");
	sparse_verify(1);
	big_verify(1);
	extents_verify(1);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MOUNTPOINT [--verify]\n", argv[0]);
		return 2;
	}
	if (snprintf(base, sizeof base, "%s/errs", argv[1]) >= (int)sizeof base - 1100) {
		fprintf(stderr, "mountpoint path too long\n");
		return 2;
	}
	int verify = argc > 2 && !strcmp(argv[2], "--verify");
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (verify) {
		verify_all();
	} else {
		if (mkdir(base, 0755) != 0) {
			fprintf(stderr, "mkdir %s: %s\n", base, strerror(errno));
			return 1;
		}
		test_enoent();
		test_eexist();
		test_enotempty();
		test_eisdir();
		test_enotdir();
		test_enametoolong();
		test_einval_rename();
		test_misc();
		sparse_create();
		sparse_verify(0);
		big_create();
		big_verify(0);
		extents_create();
		extents_verify(0);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
