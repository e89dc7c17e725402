/*
 * test_model: randomized model test.  The same random operations are applied
 * to the filesystem under test (--mnt) and to a shadow directory on the host
 * filesystem (--shadow); after every operation the results (return value and
 * errno) and the touched paths (type, size, mode, link count, content,
 * symlink target, xattrs) must be identical, and the whole trees are compared
 * at the end and after every remount (--remount CMD is run with system(); it
 * must unmount and mount --mnt's filesystem again).
 *
 *   test_model --mnt DIR --shadow DIR [--remount CMD] [--seed N] [--ops N]
 *              [--remount-every N] [--max-file BYTES] [--verbose]
 *
 * Operations: pwrite at random offsets and lengths (1 byte .. 2 MiB,
 * unaligned, beyond EOF), O_APPEND writes, truncate up and down, fallocate
 * (allocate, KEEP_SIZE, PUNCH_HOLE), rename (over existing files and empty
 * directories, RENAME_NOREPLACE, RENAME_EXCHANGE), link, unlink, mkdir,
 * rmdir, symlink, chmod, setxattr/removexattr, fsync, and pwrite/ftruncate/
 * fsync/read through up to 4 file descriptors kept open across the other
 * operations (so the file may be renamed or unlinked meanwhile; they are
 * closed before each remount).  Names come from a
 * small namespace (4 directories, 8 files, up to 2 levels) so that operations
 * collide: renames over existing files, links to linked files, rmdir of
 * non-empty directories all happen often.
 *
 * Reproducible: the seed (default: from the time) is printed first; the same
 * seed and --ops replay the same operations.  On a mismatch it prints the
 * operation number, the operation, the last 20 operations, and exits 1.
 * Closing line: "N passed, N failed" (N = comparisons).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define MiB (1024 * 1024)
#define PATHLEN 512
#define MAXWRITE (2 * MiB)

static const char *mnt_root, *shadow_root, *remount_cmd;
static uint64_t seed;
static long nops = 10000, remount_every = 1000, cur_op;
static uint64_t max_file = 8 * MiB;
static int verbose;
static long passed, failed;
static int compare_dir_nlink;

/* ---- PRNG (splitmix64): one stream drives every choice and every byte ---- */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static uint64_t rndn(uint64_t n) { return n ? rnd() % n : 0; }

/* ---- op log, failure report ---------------------------------------------- */
static char oplog[20][PATHLEN * 2 + 128];
static char curdesc[PATHLEN * 2 + 64];

static void describe(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void describe(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(curdesc, sizeof curdesc, fmt, ap);
	va_end(ap);
	snprintf(oplog[cur_op % 20], sizeof oplog[0], "op %ld: %s", cur_op, curdesc);
	if (verbose)
		printf("op %ld: %s\n", cur_op, curdesc);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	failed++;
	printf("FAIL at op %ld (%s): ", cur_op, curdesc);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\nlast operations:\n");
	for (long i = cur_op - 19; i <= cur_op; i++)
		if (i >= 0 && oplog[i % 20][0])
			printf("  %s\n", oplog[i % 20]);
	printf("reproduce with: --seed %" PRIu64 " --ops %ld --remount-every %ld --max-file %" PRIu64 "\n",
	       seed, nops, remount_every, max_file);
	printf("%ld passed, %ld failed\n", passed, failed);
	exit(1);
}

static void pass(void) { passed++; }

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "?";
}

/* ---- paths ------------------------------------------------------------------ */
static void full(char *out, const char *root, const char *rel)
{
	if (snprintf(out, PATH_MAX, "%s/%s", root, rel) >= PATH_MAX)
		abort();
}

static void rand_dir(char *out)
{
	int depth = (int)rndn(3); /* 0 = the root */
	out[0] = 0;
	for (int i = 0; i < depth; i++)
		sprintf(out + strlen(out), "%sd%d", i ? "/" : "", (int)rndn(4));
	if (!depth)
		strcpy(out, ".");
}

static void rand_file(char *out)
{
	char d[PATHLEN];
	rand_dir(d);
	sprintf(out, "%s/f%d", d, (int)rndn(8));
}

static void rand_subdir(char *out)
{
	char d[PATHLEN];
	rand_dir(d);
	sprintf(out, "%s/d%d", d, (int)rndn(4));
}

static void rand_any(char *out)
{
	if (rndn(3) == 0)
		rand_subdir(out);
	else
		rand_file(out);
}

/* ---- comparisons -------------------------------------------------------------- */

static void cmp_result(const char *what, long r1, int e1, long r2, int e2)
{
	if ((r1 < 0) != (r2 < 0) || (r1 < 0 && e1 != e2) || (r1 >= 0 && r1 != r2))
		fail("%s: shadow returned %ld/%s, filesystem returned %ld/%s", what, r1,
		     r1 < 0 ? ename(e1) : "ok", r2, r2 < 0 ? ename(e2) : "ok");
	pass();
}

static unsigned char *buf_a, *buf_b, *wbuf;

static int readfull(int fd, unsigned char *b, size_t len, off_t off, ssize_t *got)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, b + done, len - done, off + (off_t)done);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = (ssize_t)done;
	return 0;
}

/* compare [off, off+len) of two open files (len clipped by EOF) */
static void cmp_range(const char *rel, int fa, int fb, off_t off, off_t len)
{
	while (len > 0) {
		size_t n = len > MAXWRITE ? MAXWRITE : (size_t)len;
		ssize_t ga, gb;
		if (readfull(fa, buf_a, n, off, &ga))
			fail("%s: read shadow at %lld: %s", rel, (long long)off, strerror(errno));
		if (readfull(fb, buf_b, n, off, &gb))
			fail("%s: read at %lld: %s", rel, (long long)off, strerror(errno));
		if (ga != gb)
			fail("%s: read at %lld returned %zd bytes, shadow %zd", rel, (long long)off, gb, ga);
		if (memcmp(buf_a, buf_b, (size_t)ga)) {
			size_t i = 0;
			while (buf_a[i] == buf_b[i])
				i++;
			size_t j = i;
			while (j < (size_t)ga && buf_a[j] != buf_b[j])
				j++;
			fail("%s: content differs at offset %lld (byte 0x%02x, shadow 0x%02x; %zu bytes differ from there)",
			     rel, (long long)(off + (off_t)i), buf_b[i], buf_a[i], j - i);
		}
		if (ga < (ssize_t)n)
			break;
		off += (off_t)n;
		len -= (off_t)n;
	}
	pass();
}

static void cmp_xattrs(const char *rel, const char *pa, const char *pb)
{
	char la[4096], lb[4096];
	ssize_t na = llistxattr(pa, la, sizeof la), nb = llistxattr(pb, lb, sizeof lb);
	if (na < 0 || nb < 0) {
		if ((na < 0) != (nb < 0))
			fail("%s: listxattr %zd (shadow %zd)", rel, nb, na);
		return;
	}
	/* user.* names only (the host may add security.* ones), any order */
	int cnt_a = 0, cnt_b = 0;
	for (char *p = la; p < la + na; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5))
			continue;
		cnt_a++;
		char va[512], vb[512];
		ssize_t sa = lgetxattr(pa, p, va, sizeof va), sb = lgetxattr(pb, p, vb, sizeof vb);
		if (sa != sb || (sa > 0 && memcmp(va, vb, (size_t)sa)))
			fail("%s: xattr %s: %zd bytes, shadow %zd bytes (or different values)", rel, p, sb, sa);
	}
	for (char *p = lb; p < lb + nb; p += strlen(p) + 1)
		if (!strncmp(p, "user.", 5))
			cnt_b++;
	if (cnt_a != cnt_b)
		fail("%s: %d user xattrs, shadow has %d", rel, cnt_b, cnt_a);
	pass();
}

/* compare one path in both trees; full: compare all content */
static void cmp_path(const char *rel, int full_content)
{
	char pa[PATH_MAX], pb[PATH_MAX];
	struct stat sa, sb;
	full(pa, shadow_root, rel);
	full(pb, mnt_root, rel);
	int ra = lstat(pa, &sa), ea = errno;
	int rb = lstat(pb, &sb), eb = errno;
	if (ra || rb) {
		if (ra && rb && ea == eb) {
			pass();
			return;
		}
		fail("%s: lstat %d/%s, shadow %d/%s", rel, rb, rb ? ename(eb) : "ok", ra,
		     ra ? ename(ea) : "ok");
	}
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
		fail("%s: type 0%o, shadow 0%o", rel, sb.st_mode & S_IFMT, sa.st_mode & S_IFMT);
	if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))
		fail("%s: mode 0%o, shadow 0%o", rel, sb.st_mode & 07777, sa.st_mode & 07777);
	if ((!S_ISDIR(sa.st_mode) || compare_dir_nlink) && sa.st_nlink != sb.st_nlink)
		fail("%s: st_nlink %lu, shadow %lu", rel, (unsigned long)sb.st_nlink,
		     (unsigned long)sa.st_nlink);
	if (!S_ISDIR(sa.st_mode) && sa.st_size != sb.st_size)
		fail("%s: st_size %lld, shadow %lld", rel, (long long)sb.st_size, (long long)sa.st_size);
	pass();
	if (S_ISLNK(sa.st_mode)) {
		char ta[PATH_MAX], tb[PATH_MAX];
		ssize_t na = readlink(pa, ta, sizeof ta), nb = readlink(pb, tb, sizeof tb);
		if (na != nb || na < 0 || memcmp(ta, tb, (size_t)na))
			fail("%s: symlink target differs (%zd vs shadow %zd bytes)", rel, nb, na);
		pass();
		return;
	}
	cmp_xattrs(rel, pa, pb);
	if (!S_ISREG(sa.st_mode))
		return;
	int fa = open(pa, O_RDONLY), fb = open(pb, O_RDONLY);
	if (fa < 0 || fb < 0)
		fail("%s: open for compare: %s", rel, strerror(errno));
	struct stat fs;
	if (fstat(fb, &fs) || fs.st_size != sb.st_size)
		fail("%s: fstat size %lld != lstat size %lld", rel, (long long)fs.st_size,
		     (long long)sb.st_size);
	if (full_content || sa.st_size <= 2 * MiB) {
		cmp_range(rel, fa, fb, 0, sa.st_size + 1);
	} else {
		/* head, tail and two random windows; the whole file at the end */
		cmp_range(rel, fa, fb, 0, 64 * 1024);
		cmp_range(rel, fa, fb, sa.st_size > 65536 ? sa.st_size - 65536 : 0, 65537);
		for (int i = 0; i < 2; i++)
			cmp_range(rel, fa, fb, (off_t)rndn((uint64_t)sa.st_size), 256 * 1024);
	}
	close(fa);
	close(fb);
}

/* compare parent directories' entries too (names only) */
static void parent_of(const char *rel, char *out)
{
	strcpy(out, rel);
	char *s = strrchr(out, '/');
	if (s)
		*s = 0;
	else
		strcpy(out, ".");
}

/* ---- full tree compare, with hard-link structure ------------------------------ */
struct inopair { ino_t a, b; };
static struct inopair *pairs;
static size_t npairs, cappairs;

static int cmpstr(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static size_t list_dir(const char *path, char ***names)
{
	DIR *d = opendir(path);
	if (!d)
		fail("opendir %s: %s", path, strerror(errno));
	size_t n = 0, cap = 16;
	char **v = malloc(cap * sizeof *v);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof *v);
		v[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof *v, cmpstr);
	*names = v;
	return n;
}

static void link_pair(const char *rel, ino_t a, ino_t b)
{
	for (size_t i = 0; i < npairs; i++) {
		if (pairs[i].a == a || pairs[i].b == b) {
			if (pairs[i].a != a || pairs[i].b != b)
				fail("%s: hard-link structure differs from the shadow", rel);
			return;
		}
	}
	if (npairs == cappairs)
		pairs = realloc(pairs, (cappairs = cappairs ? 2 * cappairs : 64) * sizeof *pairs);
	pairs[npairs++] = (struct inopair){ a, b };
}

static void cmp_tree_rec(const char *rel, size_t *count)
{
	char pa[PATH_MAX], pb[PATH_MAX];
	full(pa, shadow_root, rel);
	full(pb, mnt_root, rel);
	char **na, **nb;
	size_t ca = list_dir(pa, &na), cb = list_dir(pb, &nb);
	for (size_t i = 0; i < ca || i < cb; i++) {
		if (i >= ca || i >= cb || strcmp(na[i], nb[i]))
			fail("directory %s: entry %zu is '%s', shadow has '%s' (%zu entries, shadow %zu)", rel,
			     i, i < cb ? nb[i] : "(end)", i < ca ? na[i] : "(end)", cb, ca);
	}
	pass();
	for (size_t i = 0; i < ca; i++) {
		char sub[PATHLEN];
		if (snprintf(sub, sizeof sub, "%s/%s", rel, na[i]) >= (int)sizeof sub)
			abort();
		cmp_path(sub, 1);
		(*count)++;
		char qa[PATH_MAX], qb[PATH_MAX];
		struct stat sa, sb;
		full(qa, shadow_root, sub);
		full(qb, mnt_root, sub);
		if (lstat(qa, &sa) || lstat(qb, &sb))
			fail("%s: lstat during tree compare", sub);
		if (S_ISREG(sa.st_mode))
			link_pair(sub, sa.st_ino, sb.st_ino);
		if (S_ISDIR(sa.st_mode))
			cmp_tree_rec(sub, count);
	}
	for (size_t i = 0; i < ca; i++)
		free(na[i]);
	for (size_t i = 0; i < cb; i++)
		free(nb[i]);
	free(na);
	free(nb);
}

static void cmp_tree(const char *why)
{
	size_t count = 0;
	npairs = 0;
	cmp_tree_rec(".", &count);
	printf("op %ld: full tree compare (%s): %zu entries identical\n", cur_op, why, count);
}

/* ---- operations ------------------------------------------------------------------- */

/* run the same syscall-ish expression on both trees; A/B are full paths */
#define BOTH(what, expr_a, expr_b)                                                  \
	do {                                                                        \
		errno = 0;                                                          \
		long r1_ = (long)(expr_a);                                          \
		int e1_ = errno;                                                    \
		errno = 0;                                                          \
		long r2_ = (long)(expr_b);                                          \
		int e2_ = errno;                                                    \
		cmp_result(what, r1_, e1_, r2_, e2_);                               \
	} while (0)

static uint64_t rand_off(void)
{
	uint64_t r = rndn(100);
	uint64_t lim = r < 70 ? 256 * 1024 : r < 95 ? 2 * MiB : max_file;
	if (lim > max_file)
		lim = max_file;
	uint64_t o = rndn(lim);
	if (rndn(3) == 0)
		o &= ~4095ull; /* aligned */
	return o;
}

static size_t rand_len(void)
{
	uint64_t r = rndn(100);
	size_t l = r < 40 ? 1 + rndn(100) : r < 80 ? 1 + rndn(64 * 1024) : r < 95 ? 1 + rndn(512 * 1024)
									: 1 + rndn(MAXWRITE);
	if (rndn(3) == 0)
		l = (l + 4095) & ~(size_t)4095; /* block multiples */
	if (l > MAXWRITE)
		l = MAXWRITE;
	return l;
}

static void fill_wbuf(size_t len)
{
	uint64_t *w = (uint64_t *)wbuf;
	for (size_t i = 0; i < (len + 7) / 8; i++)
		w[i] = rnd();
	/* some writes are runs of one byte or zeros: zero pages must not be holes */
	if (rndn(8) == 0)
		memset(wbuf, rndn(4) ? (int)rndn(256) : 0, len);
}

static int op_sync; /* decided once per op, the same for both trees */

static long do_pwrite(const char *p, int flags, off_t off, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | flags, 0644);
	if (fd < 0)
		return -1;
	ssize_t r = (flags & O_APPEND) ? write(fd, wbuf, len) : pwrite(fd, wbuf, len, off);
	int e = errno;
	if (r >= 0 && op_sync && fsync(fd))
		r = -1, e = errno;
	close(fd);
	errno = e;
	return r;
}

static long do_fallocate(const char *p, int mode, off_t off, off_t len)
{
	int fd = open(p, O_WRONLY);
	if (fd < 0)
		return -1;
	int r = fallocate(fd, mode, off, len);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

static long do_fsync(const char *p)
{
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -1;
	int r = op_sync ? fsync(fd) : fdatasync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

/* ---- open file descriptors kept across operations --------------------------
 * Four slots, each an fd on the shadow and one on the filesystem opened on the
 * same path: writes, truncates and reads through them while other operations
 * rename or unlink the path (an unlinked open file must keep working). */
#define NSLOTS 4
static int slot_a[NSLOTS] = { -1, -1, -1, -1 }, slot_b[NSLOTS] = { -1, -1, -1, -1 };
static char slot_path[NSLOTS][PATHLEN];

static void slot_compare(int i)
{
	struct stat sa, sb;
	if (fstat(slot_a[i], &sa) || fstat(slot_b[i], &sb))
		fail("slot %d: fstat: %s", i, strerror(errno));
	if (sa.st_size != sb.st_size || sa.st_nlink != sb.st_nlink)
		fail("slot %d (opened as %s): fstat size %lld nlink %lu, shadow size %lld nlink %lu", i,
		     slot_path[i], (long long)sb.st_size, (unsigned long)sb.st_nlink, (long long)sa.st_size,
		     (unsigned long)sa.st_nlink);
	pass();
	if (sa.st_size <= 2 * MiB)
		cmp_range(slot_path[i], slot_a[i], slot_b[i], 0, sa.st_size + 1);
	else
		cmp_range(slot_path[i], slot_a[i], slot_b[i], (off_t)rndn((uint64_t)sa.st_size), 256 * 1024);
}

static void slots_close(void)
{
	for (int i = 0; i < NSLOTS; i++) {
		if (slot_a[i] < 0)
			continue;
		slot_compare(i);
		close(slot_a[i]);
		int r = close(slot_b[i]);
		if (r)
			fail("slot %d: close: %s", i, strerror(errno));
		slot_a[i] = slot_b[i] = -1;
	}
}

static int fd_op(char *r1)
{
	int i = (int)rndn(NSLOTS);
	if (slot_a[i] < 0) {
		rand_file(r1);
		char a1[PATH_MAX], b1[PATH_MAX];
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		describe("slot %d: open %s O_RDWR|O_CREAT", i, r1);
		errno = 0;
		int fa = open(a1, O_RDWR | O_CREAT, 0644);
		int ea = errno;
		errno = 0;
		int fb = open(b1, O_RDWR | O_CREAT, 0644);
		int eb = errno;
		if ((fa < 0) != (fb < 0) || (fa < 0 && ea != eb))
			fail("open: shadow %d/%s, filesystem %d/%s", fa, fa < 0 ? ename(ea) : "ok", fb,
			     fb < 0 ? ename(eb) : "ok");
		pass();
		if (fa >= 0) {
			slot_a[i] = fa;
			slot_b[i] = fb;
			snprintf(slot_path[i], PATHLEN, "%s", r1);
			slot_compare(i);
		}
		return 1;
	}
	strcpy(r1, slot_path[i]);
	uint64_t k = rndn(100);
	if (k < 45) {
		off_t off = (off_t)rand_off();
		size_t len = rand_len();
		if ((uint64_t)off + len > max_file)
			len = (size_t)(max_file - (uint64_t)off);
		if (!len)
			len = 1;
		fill_wbuf(len);
		describe("slot %d (%s): pwrite off %lld len %zu", i, r1, (long long)off, len);
		BOTH("pwrite(fd)", pwrite(slot_a[i], wbuf, len, off), pwrite(slot_b[i], wbuf, len, off));
	} else if (k < 60) {
		off_t sz = (off_t)rand_off();
		describe("slot %d (%s): ftruncate %lld", i, r1, (long long)sz);
		BOTH("ftruncate", ftruncate(slot_a[i], sz), ftruncate(slot_b[i], sz));
	} else if (k < 70) {
		describe("slot %d (%s): fsync", i, r1);
		BOTH("fsync(fd)", fsync(slot_a[i]), fsync(slot_b[i]));
	} else if (k < 85) {
		describe("slot %d (%s): compare", i, r1);
	} else {
		describe("slot %d (%s): close", i, r1);
		slot_compare(i);
		close(slot_a[i]);
		if (close(slot_b[i]))
			fail("close: %s", strerror(errno));
		slot_a[i] = slot_b[i] = -1;
		return 1;
	}
	slot_compare(i);
	return 1;
}

static void do_remount(void)
{
	if (!remount_cmd)
		return;
	slots_close();
	printf("op %ld: remount\n", cur_op);
	fflush(stdout);
	if (chdir("/"))
		fail("chdir /");
	int st = system(remount_cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("remount command '%s' failed (status 0x%x)", remount_cmd, st);
	cmp_tree("after remount");
}

static void one_op(void)
{
	char r1[PATHLEN], r2[PATHLEN];
	char a1[PATH_MAX], b1[PATH_MAX], a2[PATH_MAX], b2[PATH_MAX];
	int two = 0;
	uint64_t k = rndn(100);
	op_sync = rndn(16) == 0;

	if (k >= 24 && k < 30) { /* through a kept open fd */
		fd_op(r1);
	} else if (k < 30) { /* pwrite */
		rand_file(r1);
		off_t off = (off_t)rand_off();
		size_t len = rand_len();
		if ((uint64_t)off + len > max_file)
			len = (size_t)(max_file - (uint64_t)off);
		if (!len)
			len = 1;
		fill_wbuf(len);
		describe("pwrite %s off %lld len %zu", r1, (long long)off, len);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("pwrite", do_pwrite(a1, 0, off, len), do_pwrite(b1, 0, off, len));
	} else if (k < 33) { /* append */
		rand_file(r1);
		size_t len = rndn(2) ? 1 + rndn(5000) : 1 + rndn(300000);
		fill_wbuf(len);
		describe("append %s len %zu", r1, len);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		struct stat st;
		if (stat(a1, &st) == 0 && (uint64_t)st.st_size + len > max_file)
			BOTH("truncate before append", truncate(a1, 0), truncate(b1, 0));
		BOTH("append", do_pwrite(a1, O_APPEND, 0, len), do_pwrite(b1, O_APPEND, 0, len));
	} else if (k < 41) { /* truncate */
		rand_file(r1);
		off_t sz = rndn(4) == 0 ? 0 : (off_t)rand_off();
		if (rndn(4) == 0)
			sz = (off_t)(max_file - rndn(4096)); /* far up */
		describe("truncate %s %lld", r1, (long long)sz);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("truncate", truncate(a1, sz), truncate(b1, sz));
	} else if (k < 48) { /* fallocate */
		rand_file(r1);
		off_t off = (off_t)rand_off();
		off_t len = (off_t)rand_len();
		if ((uint64_t)(off + len) > max_file)
			len = (off_t)max_file - off;
		if (len <= 0)
			len = 1;
		uint64_t m = rndn(10);
		int mode = m < 5 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : m < 8 ? FALLOC_FL_KEEP_SIZE : 0;
		describe("fallocate %s mode %s off %lld len %lld", r1,
			 mode == 0 ? "0" : mode == FALLOC_FL_KEEP_SIZE ? "KEEP_SIZE" : "PUNCH_HOLE|KEEP_SIZE",
			 (long long)off, (long long)len);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("fallocate", do_fallocate(a1, mode, off, len), do_fallocate(b1, mode, off, len));
	} else if (k < 60) { /* rename */
		uint64_t t = rndn(10);
		unsigned flags = 0;
		if (t < 6) {
			rand_file(r1);
			rand_file(r2);
		} else if (t < 8) {
			rand_subdir(r1);
			rand_subdir(r2);
		} else {
			rand_any(r1);
			rand_any(r2);
		}
		if (rndn(6) == 0)
			flags = rndn(2) ? RENAME_NOREPLACE : RENAME_EXCHANGE;
		describe("rename%s %s -> %s", flags == RENAME_NOREPLACE ? "(NOREPLACE)" : flags ? "(EXCHANGE)" : "",
			 r1, r2);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		full(a2, shadow_root, r2);
		full(b2, mnt_root, r2);
		BOTH("rename", renameat2(AT_FDCWD, a1, AT_FDCWD, a2, flags),
		     renameat2(AT_FDCWD, b1, AT_FDCWD, b2, flags));
		two = 1;
	} else if (k < 67) { /* link */
		rand_file(r1);
		rand_file(r2);
		describe("link %s -> %s", r1, r2);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		full(a2, shadow_root, r2);
		full(b2, mnt_root, r2);
		BOTH("link", link(a1, a2), link(b1, b2));
		two = 1;
	} else if (k < 74) { /* unlink */
		rand_any(r1);
		describe("unlink %s", r1);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("unlink", unlink(a1), unlink(b1));
	} else if (k < 80) { /* mkdir */
		rand_subdir(r1);
		describe("mkdir %s", r1);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("mkdir", mkdir(a1, 0755), mkdir(b1, 0755));
	} else if (k < 85) { /* rmdir */
		rand_subdir(r1);
		describe("rmdir %s", r1);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("rmdir", rmdir(a1), rmdir(b1));
	} else if (k < 87) { /* symlink */
		rand_file(r1);
		char target[64];
		snprintf(target, sizeof target, "target-%d-%s", (int)rndn(1000), rndn(2) ? "x" : "../f1");
		describe("symlink %s -> %s", r1, target);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("symlink", symlink(target, a1), symlink(target, b1));
	} else if (k < 89) { /* chmod */
		rand_any(r1);
		mode_t m = (mode_t)(rndn(2) ? 0644 : rndn(2) ? 0600 : 0755);
		describe("chmod %s 0%o", r1, m);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("chmod", chmod(a1, m), chmod(b1, m));
	} else if (k < 93) { /* xattrs */
		rand_any(r1);
		char name[32], val[300];
		snprintf(name, sizeof name, "user.k%d", (int)rndn(4));
		size_t vl = rndn(sizeof val);
		for (size_t i = 0; i < vl; i++)
			val[i] = (char)rnd();
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		if (rndn(3)) {
			describe("setxattr %s %s (%zu bytes)", r1, name, vl);
			BOTH("setxattr", lsetxattr(a1, name, val, vl, 0), lsetxattr(b1, name, val, vl, 0));
		} else {
			describe("removexattr %s %s", r1, name);
			BOTH("removexattr", lremovexattr(a1, name), lremovexattr(b1, name));
		}
	} else if (k < 95) { /* fsync */
		rand_any(r1);
		op_sync = (int)rndn(2);
		describe("%s %s", op_sync ? "fsync" : "fdatasync", r1);
		full(a1, shadow_root, r1);
		full(b1, mnt_root, r1);
		BOTH("fsync", do_fsync(a1), do_fsync(b1));
	} else { /* read only: compare a file */
		rand_file(r1);
		describe("compare %s", r1);
	}

	cmp_path(r1, 0);
	char par[PATHLEN];
	parent_of(r1, par);
	cmp_path(par, 0);
	if (two) {
		cmp_path(r2, 0);
		parent_of(r2, par);
		cmp_path(par, 0);
	}
}

static void usage(const char *p)
{
	fprintf(stderr,
		"usage: %s --mnt DIR --shadow DIR [--remount CMD] [--seed N] [--ops N]\n"
		"          [--remount-every N] [--max-file BYTES] [--verbose]\n",
		p);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mnt", required_argument, 0, 'm' },	  { "shadow", required_argument, 0, 's' },
		{ "remount", required_argument, 0, 'r' }, { "seed", required_argument, 0, 'S' },
		{ "ops", required_argument, 0, 'n' },	  { "remount-every", required_argument, 0, 'e' },
		{ "max-file", required_argument, 0, 'M' }, { "verbose", no_argument, 0, 'v' },
		{ 0, 0, 0, 0 },
	};
	struct timeval tv;
	gettimeofday(&tv, NULL);
	seed = (uint64_t)tv.tv_sec * 1000003u ^ (uint64_t)tv.tv_usec ^ (uint64_t)getpid() << 20;
	seed %= 1000000000ull;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mnt_root = optarg; break;
		case 's': shadow_root = optarg; break;
		case 'r': remount_cmd = optarg; break;
		case 'S': seed = strtoull(optarg, NULL, 0); break;
		case 'n': nops = strtol(optarg, NULL, 0); break;
		case 'e': remount_every = strtol(optarg, NULL, 0); break;
		case 'M': max_file = strtoull(optarg, NULL, 0); break;
		case 'v': verbose = 1; break;
		default: usage(argv[0]);
		}
	}
	if (!mnt_root || !shadow_root || optind != argc || max_file < 8192)
		usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_model: seed=%" PRIu64 " ops=%ld remount-every=%ld max-file=%" PRIu64 "\n", seed, nops,
	       remount_every, max_file);
	rng_state = seed;
	buf_a = malloc(MAXWRITE + 8);
	buf_b = malloc(MAXWRITE + 8);
	wbuf = malloc(MAXWRITE + 8);
	if (!buf_a || !buf_b || !wbuf)
		return 2;

	/* does the shadow count subdirectories in a directory's st_nlink (ext4,
	 * tmpfs, xfs do; btrfs does not)?  Then the filesystem must too. */
	{
		char p[PATH_MAX], q[PATH_MAX];
		struct stat st;
		full(p, shadow_root, ".nlink-probe");
		full(q, shadow_root, ".nlink-probe/sub");
		if (mkdir(p, 0755) || mkdir(q, 0755) || stat(p, &st))
			fail("shadow %s not writable: %s", shadow_root, strerror(errno));
		compare_dir_nlink = st.st_nlink == 3;
		if (rmdir(q) || rmdir(p))
			fail("rmdir probe");
		if (!compare_dir_nlink)
			printf("shadow does not count subdirectories in st_nlink: directory link counts not compared\n");
	}
	/* both roots must start empty */
	char **n;
	size_t cnt = list_dir(mnt_root, &n);
	free(n);
	cnt += list_dir(shadow_root, &n);
	free(n);
	if (cnt)
		fail("--mnt and --shadow must be empty directories");

	long next_remount = remount_every > 0 ? remount_every / 2 + (long)rndn((uint64_t)remount_every) : -1;
	for (cur_op = 0; cur_op < nops; cur_op++) {
		one_op();
		if (cur_op == next_remount) {
			do_remount();
			next_remount += remount_every / 2 + (long)rndn((uint64_t)remount_every);
		}
		if (cur_op % 500 == 499)
			printf("op %ld: %ld comparisons so far\n", cur_op + 1, passed);
	}
	snprintf(curdesc, sizeof curdesc, "final compare");
	slots_close();
	cmp_tree("end");
	do_remount();
	printf("seed=%" PRIu64 ": %ld operations\n", seed, nops);
	printf("%ld passed, %ld failed\n", passed, failed);
	return failed ? 1 : 0;
}
