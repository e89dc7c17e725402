/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kill_torture: a crash-consistency workload and its checker.
 *
 *   kill_torture run   --dir D --journal J --seed S [--workers N]
 *                      [--image IMG] [--ops N] [--time-ms T]
 *   kill_torture check --dir D --journal J [--workers N] [--cut S]
 *
 * run: N worker processes, worker k works in D/w<k> and appends to the
 * journal J.<k> (a file OUTSIDE the filesystem).  Each worker owns 16 name
 * slots s00..s15 and performs random operations on them: create (O_EXCL)
 * with data, append, overwrite in place, rename (also over an existing
 * name), unlink, fsync / fdatasync of a file, fsync of the directory (open
 * O_RDONLY|O_DIRECTORY + fsync), and read-back checks against its model.
 *
 * Files are exact to check: a file is a sequence of 64-byte self-describing
 * records {magic, file id, index, version, fill, crc}; every write covers
 * whole records at record-aligned offsets and carries a new per-file
 * version, files never shrink.  Every operation is written to the journal
 * before it is issued (intent); after every fsync that returned 0 an ack
 * line is appended and the journal is fdatasync'ed:
 *
 *   C slot id n          create slot with records 0..n-1, version 1
 *   W slot id from n v   write records from..from+n-1 with version v
 *   R src dst id         rename src over dst
 *   U slot id            unlink
 *   AF id E              fsync(id) returned 0 (data + name creation durable)
 *   AD E                 fsync(dir) returned 0 (every name durable)
 *   AR E                 the worker directory is durable (root fsync'ed)
 *
 * E is where the image's log chain ends right after the fsync returned,
 * as a buffer seq: the seq the next buffer will carry (header-only walk,
 * tests/crash/chain.c, with --image; 0 without): every acknowledged record
 * lies in a buffer with a lower seq.  Seqs, not addresses: segments are
 * reused, so log addresses do not grow with time.  `check --cut S` (for
 * images whose log was cut before the buffer with seq S, logcut's S=)
 * counts only acks with E <= S; without --cut every ack counts.
 *
 * check, per worker:
 *   - every name in D/w<k> is a slot name, every file parses;
 *   - each slot holds its state at the last counted directory ack or one of
 *     the states the journal gave it after that ack (ABSENT or a file id),
 *     never an older one; no file appears under two names;
 *   - every file with a counted data ack exists (unless the journal removed
 *     it after the ack: unlink or rename over it), is at least as long as
 *     acked, and each acked record has a version >= the acked one; every
 *     record is either a version that was written or (only beyond the acked
 *     length) zero.
 * Exit 0 when everything holds, 1 with one line per violation otherwise,
 * 2 on usage or I/O errors of the checker itself.
 *
 * run exits 0 when its ops/time budget is used up, 3 when an operation on
 * the filesystem failed with ENOTCONN/ECONNABORTED/EIO (expected once the
 * daemon is killed), 4 when one failed with any other error and 2 when a
 * read-back returned wrong data with no error (bugs in any case).
 *
 * Assumption used for exactness: the filesystem never splits one write at
 * an offset that is not a multiple of 64 (bringfs splits at 4 KiB pages
 * and at its per-record data limit, both multiples of 64), so a record is
 * never half old, half new.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "crc32c.h"

#define RS 64u			/* record size */
#define NSLOT 16
#define MAX_REC 16384u		/* 1 MiB per file at most */
#define REC_MAGIC 0x4352544bu	/* "KTRC" */
#define ABSENT 0u

struct rec {
	uint32_t magic, id, idx, ver;
	uint8_t fill[44];
	uint32_t crc;
};
_Static_assert(sizeof(struct rec) == RS, "record size");

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static void rec_make(struct rec *r, uint32_t id, uint32_t idx, uint32_t ver)
{
	uint64_t s = mix(((uint64_t)id << 32) ^ ((uint64_t)idx << 12) ^ ver);

	r->magic = REC_MAGIC;
	r->id = id;
	r->idx = idx;
	r->ver = ver;
	for (unsigned i = 0; i < sizeof(r->fill); i++) {
		if (i % 8 == 0)
			s = mix(s + i);
		r->fill[i] = (uint8_t)(s >> (8 * (i % 8)));
	}
	r->crc = br_crc32c(0, r, offsetof(struct rec, crc));
}

static bool rec_zero(const struct rec *r)
{
	const uint8_t *p = (const uint8_t *)r;

	for (unsigned i = 0; i < RS; i++)
		if (p[i])
			return false;
	return true;
}

/* 0: a well-formed record of (id?, idx) with its version in *ver. */
static int rec_parse(const struct rec *r, uint32_t idx, uint32_t *id, uint32_t *ver)
{
	struct rec want;

	if (r->magic != REC_MAGIC || r->idx != idx ||
	    r->crc != br_crc32c(0, r, offsetof(struct rec, crc)))
		return -1;
	rec_make(&want, r->id, r->idx, r->ver);
	if (memcmp(&want, r, RS))
		return -1;
	*id = r->id;
	*ver = r->ver;
	return 0;
}

/* ---- random ---------------------------------------------------------- */

static uint64_t rs;
static uint64_t rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 2685821657736338717ull;
}
static uint32_t below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }

/* ---- model ------------------------------------------------------------- */

struct file {
	uint32_t id;
	uint32_t nrec;
	uint32_t ver;		/* last version written */
	uint32_t *rv;		/* per record: highest version written */
	/* checker */
	bool acked;
	uint32_t ack_nrec;
	uint32_t *ack_rv;
	bool removed;		/* unlinked or replaced after its last ack */
	int found;		/* slot it was found in, -1 */
};

struct model {
	struct file **f;	/* by id & 0xffffff */
	size_t nf;
	uint32_t slot[NSLOT];	/* file id or ABSENT */
	/* checker */
	uint32_t ack_slot[NSLOT];
	uint32_t *later[NSLOT];	/* states after the last counted dir ack */
	size_t nlater[NSLOT], caplater[NSLOT];
	bool dir_acked;
	unsigned acks_data, acks_dir, acks_ignored;
};

static void *xcalloc(size_t n, size_t s)
{
	void *p = calloc(n ? n : 1, s);

	if (!p) {
		perror("calloc");
		exit(2);
	}
	return p;
}

static struct file *file_get(struct model *m, uint32_t id, bool create)
{
	size_t i = id & 0xffffffu;

	if (i >= m->nf) {
		size_t nn = m->nf ? m->nf : 64;

		if (!create)
			return NULL;
		while (nn <= i)
			nn *= 2;
		m->f = realloc(m->f, nn * sizeof(*m->f));
		if (!m->f)
			exit(2);
		memset(m->f + m->nf, 0, (nn - m->nf) * sizeof(*m->f));
		m->nf = nn;
	}
	if (!m->f[i] && create) {
		m->f[i] = xcalloc(1, sizeof(struct file));
		m->f[i]->id = id;
		m->f[i]->rv = xcalloc(MAX_REC, sizeof(uint32_t));
		m->f[i]->found = -1;
	}
	return m->f[i];
}

static void file_write(struct file *f, uint32_t from, uint32_t n, uint32_t ver)
{
	for (uint32_t i = from; i < from + n; i++)
		f->rv[i] = ver;
	if (from + n > f->nrec)
		f->nrec = from + n;
	f->ver = ver;
}

static void later_add(struct model *m, int s, uint32_t st)
{
	for (size_t i = 0; i < m->nlater[s]; i++)
		if (m->later[s][i] == st)
			return;
	if (m->nlater[s] == m->caplater[s]) {
		m->caplater[s] = m->caplater[s] ? 2 * m->caplater[s] : 8;
		m->later[s] = realloc(m->later[s], m->caplater[s] * sizeof(uint32_t));
		if (!m->later[s])
			exit(2);
	}
	m->later[s][m->nlater[s]++] = st;
}

/* ---- run ----------------------------------------------------------------- */

static int jfd = -1;
static int imgfd = -1;
static struct chain chain;
static bool chain_ok;
static int worker;

static void jprintf(bool sync, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jprintf(bool sync, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(jfd, line, (size_t)n) != n) {
		perror("journal write");
		exit(2);
	}
	if (sync && fdatasync(jfd)) {
		perror("journal fdatasync");
		exit(2);
	}
}

static uint64_t log_end_now(void)
{
	if (!chain_ok)
		return 0;
	if (chain_walk(imgfd, &chain, false) < 0)
		return UINT64_MAX;	/* unknown: the ack then never counts under --cut */
	return chain.next_seq;
}

/* An operation failed: expected once the daemon is gone (ENOTCONN,
 * ECONNABORTED; EIO from a dying connection), a bug otherwise (exit 4). */
static void stop(const char *what, int slot, int err)
{
	bool dead = err == ENOTCONN || err == ECONNABORTED || err == EIO;

	printf("worker %d: %s: %s s%02d: %s\n", worker,
	       dead ? "stopped" : "UNEXPECTED ERROR", what, slot, strerror(err));
	fflush(stdout);
	exit(dead ? 3 : 4);
}

static void slot_name(char *buf, int s) { sprintf(buf, "s%02d", s); }

static int write_recs(int fd, const struct file *f, uint32_t from, uint32_t n, uint32_t ver)
{
	struct rec *b = malloc((size_t)n * RS);
	size_t len = (size_t)n * RS, done = 0;

	if (!b)
		exit(2);
	for (uint32_t i = 0; i < n; i++)
		rec_make(&b[i], f->id, from + i, ver);
	while (done < len) {
		ssize_t w = pwrite(fd, (char *)b + done, len - done,
				   (off_t)from * RS + (off_t)done);

		if (w <= 0) {
			int e = w < 0 ? errno : EIO;

			free(b);
			return e;
		}
		done += (size_t)w;
	}
	free(b);
	return 0;
}

/* Read back a file while the filesystem is up: it must equal the model. */
static int verify_live(const struct file *f, int s)
{
	char name[8];
	size_t len = (size_t)f->nrec * RS;
	struct rec *b = malloc(len + RS);
	ssize_t got;
	int fd;

	slot_name(name, s);
	fd = open(name, O_RDONLY);
	if (fd < 0)
		stop("open for read", s, errno);
	/* a read may come back short when the daemon dies in the middle of
	 * it (the kernel returns what it had): loop until EOF or an error */
	got = 0;
	for (;;) {
		ssize_t n = pread(fd, (char *)b + got, len + RS - (size_t)got, got);

		if (n < 0)
			stop("read", s, errno);
		if (n == 0)
			break;
		got += n;
		if ((size_t)got == len + RS)
			break;
	}
	close(fd);
	if ((size_t)got != len) {
		printf("worker %d: LIVE MISMATCH: s%02d (file %u) has %zd bytes, expected %zu\n",
		       worker, s, f->id, got, len);
		exit(2);
	}
	for (uint32_t i = 0; i < f->nrec; i++) {
		uint32_t id, ver;

		if (rec_parse(&b[i], i, &id, &ver) || id != f->id || ver != f->rv[i]) {
			printf("worker %d: LIVE MISMATCH: s%02d (file %u) record %u: %s (id %u ver %u, expected ver %u)\n",
			       worker, s, f->id, i, rec_zero(&b[i]) ? "zeros" : "bad/other",
			       b[i].id, b[i].ver, f->rv[i]);
			exit(2);
		}
	}
	free(b);
	return 0;
}

static uint32_t pick_len(void)
{
	uint32_t r = below(100);

	if (r < 3)
		return 1024 + below(7 * 1024);	/* 64..512 KiB */
	if (r < 15)
		return 64 + below(448);		/* 4..32 KiB */
	return 1 + below(63);
}

static int run_worker(const char *dir, const char *journal, uint64_t seed,
		      long ops, long time_ms)
{
	struct model m = { 0 };
	uint32_t next_id = 1;
	struct timespec t0, t;
	char name[8], name2[8];
	int dfd, rfd;

	rs = mix(seed * 0x9e3779b97f4a7c15ull + (uint64_t)worker + 1) | 1;
	jfd = open(journal, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (jfd < 0) {
		perror(journal);
		return 2;
	}
	jprintf(false, "H seed=%" PRIu64 " worker=%d\n", seed, worker);
	if (mkdir(dir, 0755) && errno != EEXIST)
		stop("mkdir", -1, errno);
	{
		/* make the worker directory durable: fsync its parent */
		char parent[4096];
		char *sl;

		snprintf(parent, sizeof(parent), "%s", dir);
		sl = strrchr(parent, '/');
		if (sl)
			*sl = 0;
		rfd = open(sl ? parent : ".", O_RDONLY | O_DIRECTORY);
		if (rfd < 0 || fsync(rfd))
			stop("fsync parent of the worker dir", -1, errno);
		close(rfd);
		jprintf(true, "AR %" PRIu64 "\n", log_end_now());
	}
	if (chdir(dir))
		stop("chdir", -1, errno);
	dfd = open(".", O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		stop("open dir", -1, errno);
	clock_gettime(CLOCK_MONOTONIC, &t0);

	for (long op = 0; ops < 0 || op < ops; op++) {
		uint32_t r = below(100);
		int s = (int)below(NSLOT), fd;
		struct file *f = m.slot[s] ? file_get(&m, m.slot[s], false) : NULL;

		if (time_ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= time_ms)
				break;
		}
		slot_name(name, s);
		if (!f && !(r >= 72 && r < 80))
			r = 99;	/* empty slot: create (or a dir fsync) */
		else if (f && r >= 84)
			r = 0;	/* the create share goes to appends */
		if (r < 30) {			/* append */
			uint32_t n = pick_len();

			if (f->nrec + n > MAX_REC)
				n = MAX_REC - f->nrec;
			if (!n)
				continue;
			fd = open(name, O_WRONLY);
			if (fd < 0)
				stop("open", s, errno);
			jprintf(false, "W %d %u %u %u %u\n", s, f->id, f->nrec, n, f->ver + 1);
			int e = write_recs(fd, f, f->nrec, n, f->ver + 1);
			if (e)
				stop("append", s, e);
			file_write(f, f->nrec, n, f->ver + 1);
			if (close(fd))
				stop("close", s, errno);
		} else if (r < 45) {		/* overwrite in place */
			uint32_t n = 1 + below(f->nrec < 64 ? f->nrec : 64);
			uint32_t from = below(f->nrec - n + 1);

			fd = open(name, O_WRONLY);
			if (fd < 0)
				stop("open", s, errno);
			jprintf(false, "W %d %u %u %u %u\n", s, f->id, from, n, f->ver + 1);
			int e = write_recs(fd, f, from, n, f->ver + 1);
			if (e)
				stop("overwrite", s, e);
			file_write(f, from, n, f->ver + 1);
			if (close(fd))
				stop("close", s, errno);
		} else if (r < 52) {		/* rename, maybe over a file */
			int d = (int)below(NSLOT - 1);

			if (d >= s)
				d++;
			slot_name(name2, d);
			jprintf(false, "R %d %d %u\n", s, d, f->id);
			if (rename(name, name2))
				stop("rename", s, errno);
			m.slot[d] = m.slot[s];
			m.slot[s] = ABSENT;
		} else if (r < 56) {		/* unlink */
			jprintf(false, "U %d %u\n", s, f->id);
			if (unlink(name))
				stop("unlink", s, errno);
			m.slot[s] = ABSENT;
		} else if (r < 72) {		/* fsync / fdatasync a file */
			fd = open(name, O_RDONLY);
			if (fd < 0)
				stop("open", s, errno);
			if ((r & 1) ? fsync(fd) : fdatasync(fd))
				stop(r & 1 ? "fsync" : "fdatasync", s, errno);
			jprintf(true, "AF %u %" PRIu64 "\n", f->id, log_end_now());
			close(fd);
		} else if (r < 80) {		/* fsync the directory */
			if (fsync(dfd))
				stop("fsync dir", s, errno);
			jprintf(true, "AD %" PRIu64 "\n", log_end_now());
		} else if (r < 84) {		/* read back */
			verify_live(f, s);
		} else if (!f) {		/* create */
			uint32_t id = ((uint32_t)worker << 24) | next_id++;
			uint32_t n = 1 + below(32);

			f = file_get(&m, id, true);
			jprintf(false, "C %d %u %u\n", s, id, n);
			fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0)
				stop("create", s, errno);
			int e = write_recs(fd, f, 0, n, 1);
			if (e)
				stop("write after create", s, e);
			file_write(f, 0, n, 1);
			m.slot[s] = id;
			if (close(fd))
				stop("close", s, errno);
		}
	}
	close(dfd);
	return 0;
}

/* ---- check ----------------------------------------------------------------- */

static unsigned violations;

static void bad(int w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(int w, const char *fmt, ...)
{
	va_list ap;

	printf("VIOLATION worker %d: ", w);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	violations++;
}

static int load_journal(struct model *m, const char *path, uint64_t cut, bool *complete)
{
	FILE *fp = fopen(path, "r");
	char line[256];

	*complete = true;
	if (!fp)
		return -1;
	for (int s = 0; s < NSLOT; s++)
		m->ack_slot[s] = ABSENT;
	while (fgets(line, sizeof(line), fp)) {
		unsigned a, b, c, d;
		int s1, s2;
		uint64_t E;
		struct file *f;

		if (!strchr(line, '\n')) {	/* a torn last line: ignore it */
			*complete = false;
			break;
		}
		if (sscanf(line, "C %d %u %u", &s1, &a, &b) == 3) {
			f = file_get(m, a, true);
			file_write(f, 0, b, 1);
			m->slot[s1] = a;
			later_add(m, s1, a);
		} else if (sscanf(line, "W %d %u %u %u %u", &s1, &a, &b, &c, &d) == 5) {
			file_write(file_get(m, a, true), b, c, d);
		} else if (sscanf(line, "R %d %d %u", &s1, &s2, &a) == 3) {
			if (m->slot[s2]) {
				f = file_get(m, m->slot[s2], false);
				if (f)
					f->removed = true;
			}
			m->slot[s2] = a;
			m->slot[s1] = ABSENT;
			later_add(m, s1, ABSENT);
			later_add(m, s2, a);
		} else if (sscanf(line, "U %d %u", &s1, &a) == 2) {
			f = file_get(m, a, false);
			if (f)
				f->removed = true;
			m->slot[s1] = ABSENT;
			later_add(m, s1, ABSENT);
		} else if (sscanf(line, "AF %u %" SCNu64, &a, &E) == 2) {
			if (E > cut) {
				m->acks_ignored++;
				continue;
			}
			f = file_get(m, a, false);
			if (!f)
				return -2;
			f->acked = true;
			f->ack_nrec = f->nrec;
			if (!f->ack_rv)
				f->ack_rv = xcalloc(MAX_REC, sizeof(uint32_t));
			memcpy(f->ack_rv, f->rv, MAX_REC * sizeof(uint32_t));
			f->removed = false;
			m->acks_data++;
		} else if (sscanf(line, "AD %" SCNu64, &E) == 1) {
			if (E > cut) {
				m->acks_ignored++;
				continue;
			}
			for (int s = 0; s < NSLOT; s++) {
				m->ack_slot[s] = m->slot[s];
				m->nlater[s] = 0;
			}
			m->acks_dir++;
		} else if (sscanf(line, "AR %" SCNu64, &E) == 1) {
			if (E <= cut)
				m->dir_acked = true;
			else
				m->acks_ignored++;
		} else if (line[0] == 'H') {
			continue;
		} else {
			return -3;
		}
	}
	fclose(fp);
	return 0;
}

static bool allowed(const struct model *m, int s, uint32_t st)
{
	if (m->ack_slot[s] == st)
		return true;
	for (size_t i = 0; i < m->nlater[s]; i++)
		if (m->later[s][i] == st)
			return true;
	return false;
}

static void check_file(struct model *m, int w, int s, const char *path)
{
	struct stat st;
	struct rec *b;
	uint32_t id = 0, nrec;
	struct file *f;
	int fd;
	ssize_t got;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st)) {
		bad(w, "s%02d: cannot open/stat: %s", s, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		bad(w, "s%02d: not a regular file (mode 0%o)", s, st.st_mode);
		close(fd);
		return;
	}
	if (st.st_size % RS) {
		bad(w, "s%02d: size %lld is not a multiple of the record size", s,
		    (long long)st.st_size);
		close(fd);
		return;
	}
	nrec = (uint32_t)(st.st_size / RS);
	b = malloc((size_t)st.st_size + RS);
	got = pread(fd, b, (size_t)st.st_size + RS, 0);
	close(fd);
	if (got != st.st_size) {
		bad(w, "s%02d: read %zd bytes of %lld: %s", s, got,
		    (long long)st.st_size, got < 0 ? strerror(errno) : "short");
		free(b);
		return;
	}
	for (uint32_t i = 0; i < nrec; i++) {
		uint32_t rid, ver;

		if (!rec_zero(&b[i]) && !rec_parse(&b[i], i, &rid, &ver)) {
			id = rid;
			break;
		}
	}
	if (!id) {	/* empty or all zero: a created file whose data is lost */
		bool ok = false;

		f = m->ack_slot[s] ? file_get(m, m->ack_slot[s], false) : NULL;
		if (f && !f->acked)
			ok = true;
		for (size_t i = 0; i < m->nlater[s]; i++) {
			f = m->later[s][i] ? file_get(m, m->later[s][i], false) : NULL;
			if (f && !f->acked)
				ok = true;
		}
		if (!ok)
			bad(w, "s%02d: %u records, all zero or unparsable, but every file this name may hold had acknowledged data",
			    s, nrec);
		free(b);
		return;
	}
	f = file_get(m, id, false);
	if (!f) {
		bad(w, "s%02d: holds file id %u, which the journal never created", s, id);
		free(b);
		return;
	}
	if (!allowed(m, s, id))
		bad(w, "s%02d: holds file %u, a state older than acknowledged (acked: %u)",
		    s, id, m->ack_slot[s]);
	if (f->found >= 0)
		bad(w, "file %u appears under two names: s%02d and s%02d", id, f->found, s);
	f->found = s;
	if (nrec > f->nrec)
		bad(w, "s%02d (file %u): %u records, but only %u were ever written",
		    s, id, nrec, f->nrec);
	if (f->acked && nrec < f->ack_nrec)
		bad(w, "s%02d (file %u): %u records, %u were acknowledged by fsync",
		    s, id, nrec, f->ack_nrec);
	for (uint32_t i = 0; i < nrec && i < f->nrec; i++) {
		uint32_t rid, ver;
		bool acked = f->acked && i < f->ack_nrec;

		if (rec_zero(&b[i])) {
			if (acked) {
				bad(w, "s%02d (file %u): acknowledged record %u reads as zeros", s, id, i);
				break;
			}
			continue;
		}
		if (rec_parse(&b[i], i, &rid, &ver) || rid != id) {
			bad(w, "s%02d (file %u): record %u is garbage or belongs to file %u",
			    s, id, i, b[i].id);
			break;
		}
		if (ver < 1 || ver > f->rv[i]) {
			bad(w, "s%02d (file %u): record %u has version %u, never written (max %u)",
			    s, id, i, ver, f->rv[i]);
			break;
		}
		if (acked && ver < f->ack_rv[i]) {
			bad(w, "s%02d (file %u): record %u has version %u, older than the acknowledged %u",
			    s, id, i, ver, f->ack_rv[i]);
			break;
		}
	}
	free(b);
}

static int check_worker(const char *dir, const char *journal, int w, uint64_t cut)
{
	struct model m = { 0 };
	bool complete, present[NSLOT] = { 0 };
	DIR *d;
	struct dirent *de;
	int err;

	err = load_journal(&m, journal, cut, &complete);
	if (err) {
		printf("check: journal %s: %s\n", journal,
		       err == -1 ? strerror(errno) : "malformed");
		return 2;
	}
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT && !m.dir_acked) {
			printf("worker %d: directory absent (never acknowledged): ok\n", w);
			return 0;
		}
		bad(w, "cannot open the worker directory %s: %s", dir, strerror(errno));
		return 1;
	}
	while ((de = readdir(d))) {
		int s;
		char path[4400], nm[8];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (sscanf(de->d_name, "s%d", &s) != 1 || s < 0 || s >= NSLOT ||
		    (slot_name(nm, s), strcmp(nm, de->d_name))) {
			bad(w, "unexpected name '%s'", de->d_name);
			continue;
		}
		if (present[s]) {
			bad(w, "readdir returned s%02d twice", s);
			continue;
		}
		present[s] = true;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		check_file(&m, w, s, path);
	}
	closedir(d);
	for (int s = 0; s < NSLOT; s++)
		if (!present[s] && !allowed(&m, s, ABSENT))
			bad(w, "s%02d is missing, but it held file %u at the last acknowledged directory fsync and the journal never removed it",
			    s, m.ack_slot[s]);
	for (size_t i = 0; i < m.nf; i++) {
		struct file *f = m.f[i];

		if (f && f->acked && !f->removed && f->found < 0)
			bad(w, "file %u (%u records acknowledged) is under no name, and the journal never removed it",
			    f->id, f->ack_nrec);
	}
	printf("worker %d: acks counted: %u data, %u dir (%u after the cut ignored)%s\n",
	       w, m.acks_data, m.acks_dir, m.acks_ignored,
	       complete ? "" : "; journal ended in a torn line");
	return 0;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", 1, 0, 'd' }, { "journal", 1, 0, 'j' }, { "seed", 1, 0, 's' },
		{ "workers", 1, 0, 'w' }, { "image", 1, 0, 'i' }, { "ops", 1, 0, 'o' },
		{ "time-ms", 1, 0, 't' }, { "cut", 1, 0, 'c' }, { 0, 0, 0, 0 },
	};
	const char *dir = NULL, *journal = NULL, *image = NULL, *mode;
	uint64_t seed = 1, cut = UINT64_MAX;
	long ops = -1, time_ms = -1;
	int nworkers = 2, c;

	if (argc < 2) {
		fprintf(stderr, "usage: kill_torture run|check --dir D --journal J ...\n");
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'j': journal = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'w': nworkers = atoi(optarg); break;
		case 'i': image = optarg; break;
		case 'o': ops = atol(optarg); break;
		case 't': time_ms = atol(optarg); break;
		case 'c': cut = strtoull(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	if (!dir || !journal || nworkers < 1 || nworkers > 16) {
		fprintf(stderr, "kill_torture: --dir and --journal are required\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (!strcmp(mode, "run")) {
		pid_t pids[16];
		int rc = 0;

		for (int w = 0; w < nworkers; w++) {
			pids[w] = fork();
			if (pids[w] == 0) {
				char wd[4096], wj[4096];
				char why[200];

				worker = w;
				if (image) {
					imgfd = open(image, O_RDONLY | O_CLOEXEC);
					chain_ok = imgfd >= 0 &&
						!chain_open(imgfd, &chain, why, sizeof(why));
					if (!chain_ok) {
						fprintf(stderr, "kill_torture: cannot read the log of %s\n", image);
						_exit(2);
					}
				}
				snprintf(wd, sizeof(wd), "%s/w%d", dir, w);
				snprintf(wj, sizeof(wj), "%s.%d", journal, w);
				_exit(run_worker(wd, wj, seed, ops, time_ms));
			}
		}
		for (int w = 0; w < nworkers; w++) {
			int st;

			waitpid(pids[w], &st, 0);
			st = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			/* 2 (wrong data) beats 3 (stopped by an error) beats 0 */
			if (st == 2 || st == 4 || (st && rc != 2 && rc != 4))
				rc = st;
		}
		return rc;
	}
	if (!strcmp(mode, "check")) {
		int rc = 0;

		for (int w = 0; w < nworkers; w++) {
			char wd[4096], wj[4096];
			int r;

			snprintf(wd, sizeof(wd), "%s/w%d", dir, w);
			snprintf(wj, sizeof(wj), "%s.%d", journal, w);
			r = check_worker(wd, wj, w, cut);
			if (r > rc)
				rc = r;
		}
		if (violations) {
			printf("check: %u violation(s)\n", violations);
			return 1;
		}
		return rc;
	}
	fprintf(stderr, "kill_torture: unknown mode %s\n", mode);
	return 2;
}
