/*
 * metabench: metadata operations per second on one directory.
 *
 *   metabench DIR [N]      (N default 50000)
 *
 * Creates N empty files in DIR (open O_CREAT|O_EXCL + close), stats each,
 * unlinks each, timing every phase.  Prints
 *   create=<ops/s> stat=<ops/s> unlink=<ops/s>
 * Exit status 1 if any operation fails.  One process, no fork per file: the
 * numbers measure the filesystem, not the shell.  Built by fs-bench.sh with cc.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 50000;
	int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || n <= 0) {
		fprintf(stderr, "metabench: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	char name[64];
	struct stat st;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof name, "file-%08ld", i);
		int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0 || close(fd)) {
			fprintf(stderr, "metabench: create %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	double t1 = now();
	for (long i = 0; i < n; i++) {
		/* a different order than creation: no help from "last looked up" */
		long j = (i * 7919) % n;
		snprintf(name, sizeof name, "file-%08ld", j);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) || st.st_size != 0) {
			fprintf(stderr, "metabench: stat %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	double t2 = now();
	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof name, "file-%08ld", i);
		if (unlinkat(dfd, name, 0)) {
			fprintf(stderr, "metabench: unlink %s: %s\n", name, strerror(errno));
			return 1;
		}
	}
	double t3 = now();
	printf("create=%.0f stat=%.0f unlink=%.0f\n", n / (t1 - t0), n / (t2 - t1), n / (t3 - t2));
	close(dfd);
	return 0;
}
