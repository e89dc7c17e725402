/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fsck.bringfs: check (and repair) a bringfs image.  The checks are
 * core/fsck's; this is option parsing, messages and e2fsck's exit codes:
 *   0 no errors, 1 errors corrected, 4 errors left uncorrected,
 *   8 operational error, 16 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsck.h"

#define PROG "fsck.bringfs"

static bool tty;

static void report(void *ctx, int level, const char *msg)
{
	static const char *tag[] = { "info", "error", "fixed", "warning" };

	(void)ctx;
	if (tty)
		fputs("\r\033[K", stdout);
	printf(PROG ": %s: %s\n", tag[level], msg);
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	if (!tty || total < (256ull << 20))
		return;
	printf("\r" PROG ": scanning the log: %3u%%", (unsigned)(done * 100 / total));
	if (done >= total)
		fputs("\r\033[K", stdout);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [-n | -y | -p] [-f] [-v] IMAGE\n"
		"  -n  check only, change nothing (allowed while mounted)\n"
		"  -y  repair what can be repaired (-p, -a: the same)\n"
		"  -f  check even if the filesystem seems clean (always done)\n"
		"  -v  verbose\n"
		"exit: 0 clean, 1 errors corrected, 4 errors left, 8 operational error\n");
}

int main(int argc, char **argv)
{
	struct br_fsck_opts o = { .report = report, .progress = progress };
	struct br_fsck_result r;
	bool check_only = false;
	int opt, err;

	while ((opt = getopt(argc, argv, "nypafvh")) != -1) {
		switch (opt) {
		case 'n': check_only = true; break;
		case 'y': case 'p': case 'a': o.repair = true; break;
		case 'f': break;	/* every run is a full check */
		case 'v': o.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 16;
		}
	}
	if (optind != argc - 1 || (check_only && o.repair)) {
		usage(stderr);
		return 16;
	}
	tty = isatty(1);
	err = br_fsck_run(argv[optind], &o, &r);
	if (err == -EBUSY) {
		fprintf(stderr, PROG ": error: %s is mounted (its lock is held); use -n to check it anyway\n",
			argv[optind]);
		return 8;
	}
	if (err) {
		fprintf(stderr, PROG ": error: %s: %s\n", argv[optind], strerror(-err));
		return 8;
	}
	printf(PROG ": %s: %llu inodes (%llu directories, %llu files), %llu log buffers; %u errors, %u corrected\n",
	       argv[optind], (unsigned long long)r.inodes,
	       (unsigned long long)r.dirs, (unsigned long long)r.files,
	       (unsigned long long)r.buffers, r.errors, r.fixed);
	if (r.errors == 0)
		return 0;
	return r.errors == r.fixed ? 1 : 4;
}
