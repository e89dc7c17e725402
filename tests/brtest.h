/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared by the C tests: one temporary directory per test process, under
 * $BR_TEST_DIR (default /var/tmp: O_DIRECT needs a real filesystem), removed
 * with everything in it when the process exits, also after a failed
 * assertion (cmocka longjmps past the test's own cleanup; atexit still runs)
 * and when it is killed by SIGTERM, SIGINT or SIGABRT.
 */
#ifndef BR_TEST_H
#define BR_TEST_H

#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

static char br_test_dir_path[256];

static int br_test_rm(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void br_test_dir_remove(void)
{
	if (br_test_dir_path[0])
		nftw(br_test_dir_path, br_test_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* A timeout (meson sends SIGTERM), ^C or an abort skips atexit: clean up
 * there too, then die of the same signal.  A sanitizer report ends in
 * abort() only with abort_on_error=1 (tests/run.sh sets it; UBSan and
 * TSan otherwise _exit(), which nothing can catch).  nftw is not
 * async-signal-safe, but the process is going away either way. */
static void br_test_dir_signal(int sig)
{
	br_test_dir_remove();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The process's temporary directory (created on first use). */
static inline const char *br_test_dir(void)
{
	if (!br_test_dir_path[0]) {
		const char *base = getenv("BR_TEST_DIR");

		snprintf(br_test_dir_path, sizeof(br_test_dir_path),
			 "%s/bringfs-test.XXXXXX", base ? base : "/var/tmp");
		if (!mkdtemp(br_test_dir_path)) {
			perror("bringfs test: mkdtemp");
			exit(1);
		}
		atexit(br_test_dir_remove);
		signal(SIGTERM, br_test_dir_signal);
		signal(SIGINT, br_test_dir_signal);
		signal(SIGABRT, br_test_dir_signal);
	}
	return br_test_dir_path;
}

/* Copy file `from` to `to` (created or truncated): a crash image, the
 * bytes as they are now.  0, or -1 if anything failed. */
static inline int br_test_copy(const char *from, const char *to)
{
	int in = open(from, O_RDONLY);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char *buf = malloc(1u << 20);
	ssize_t n = -1;

	if (in >= 0 && out >= 0 && buf)
		while ((n = read(in, buf, 1u << 20)) > 0)
			if (write(out, buf, (size_t)n) != n) {
				n = -1;
				break;
			}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(buf);
	return n == 0 ? 0 : -1;
}

/* False (after saying why) when this machine has no io_uring for us
 * (kernel without it, or forbidden): the test then exits 77, meson's
 * "skipped".  Any other error is left for the test to fail on. */
static inline bool br_test_have_io_uring(void)
{
	struct io_uring ring;
	int err = io_uring_queue_init(2, &ring, 0);

	if (err == -ENOSYS || err == -EPERM) {
		printf("SKIP: io_uring is not available here (%s)\n", strerror(-err));
		return false;
	}
	if (!err)
		io_uring_queue_exit(&ring);
	return true;
}

#endif /* BR_TEST_H */
