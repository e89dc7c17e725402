/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench-ring: the write path's latency and throughput, through the real
 * pipeline (ring -> io_uring -> O_DIRECT file), next to a raw O_DIRECT
 * sequential write of the same size on the same filesystem, same run.
 *
 *   bench-ring [-d DIR] [-s GiB] [-n OPS]
 *
 * Latency: each op is reserve + memcpy + commit, timed with the TSC
 * (calibrated against CLOCK_MONOTONIC); 1, 2, 4 threads x 64 B, 4 KiB.
 * Lines: bench=ring threads=T payload=B p50_ns=.. p90_ns=.. p99_ns=.. mean_ns=..
 *
 * -N and -b set the ring geometry (default: the store's, 4 x 1 MiB); -D
 * runs only the throughput part.
 *
 * Throughput: 2 writer threads stream S GiB of 128 KiB records, then one
 * sync (median of three runs alternating with the reference); the
 * reference writes the same bytes with pwrite(O_DIRECT) in 1 MiB
 * blocks (the ring's buffer size) followed by fdatasync.
 * Line: bench=ring-disk mib_s=.. ref_mib_s=.. ratio=..
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "store.h"

#define LOG_START 4096ull

static char path[512];
static uint64_t log_bytes;
static double ns_per_tick;
static unsigned nbuf;
static uint32_t bufsize;
static int only_disk;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void calibrate(void)
{
	double t0 = now_s();
	uint64_t c0 = __rdtsc();

	while (now_s() - t0 < 0.2)
		;
	ns_per_tick = (now_s() - t0) * 1e9 / (double)(__rdtsc() - c0);
}

static struct br_store *open_store(void)
{
	struct br_store_config c = {
		.path = path, .fd = -1, .log_start = LOG_START,
		.log_end = LOG_START + log_bytes, .next_addr = LOG_START,
		.next_seq = 1, .fsid = 1, .nbuf = nbuf, .buf_size = bufsize,
	};
	struct br_store *s;
	int err = br_store_open(&c, &s);

	if (err) {
		fprintf(stderr, "bench-ring: error: store: %s\n", strerror(-err));
		exit(1);
	}
	return s;
}

struct lat_arg {
	struct br_store *s;
	uint32_t payload;
	size_t ops;
	uint32_t *ticks;
	pthread_barrier_t *go;
};

static void *lat_thread(void *arg)
{
	struct lat_arg *a = arg;
	uint8_t src[4096];

	memset(src, 0x42, sizeof(src));
	pthread_barrier_wait(a->go);
	for (size_t i = 0; i < a->ops; i++) {
		struct br_resv r;
		uint64_t t0 = __rdtsc();

		if (br_store_reserve(a->s, a->payload, &r))
			abort();
		memcpy(r.ptr, src, a->payload);
		br_store_commit(a->s, &r);
		a->ticks[i] = (uint32_t)(__rdtsc() - t0);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_latency(unsigned threads, uint32_t payload, size_t ops)
{
	struct br_store *s = open_store();
	pthread_t t[8];
	struct lat_arg a[8];
	pthread_barrier_t go;
	uint32_t *all = malloc(sizeof(uint32_t) * ops * threads);
	double sum = 0;
	size_t n = ops * threads;

	pthread_barrier_init(&go, NULL, threads);
	for (unsigned i = 0; i < threads; i++) {
		a[i] = (struct lat_arg){ s, payload, ops, all + i * ops, &go };
		pthread_create(&t[i], NULL, lat_thread, &a[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	br_store_close(s);
	qsort(all, n, sizeof(uint32_t), cmp_u32);
	for (size_t i = 0; i < n; i++)
		sum += all[i];
	printf("bench=ring threads=%u payload=%u p50_ns=%.0f p90_ns=%.0f "
	       "p99_ns=%.0f mean_ns=%.0f\n", threads, payload,
	       all[n / 2] * ns_per_tick, all[n * 9 / 10] * ns_per_tick,
	       all[n * 99 / 100] * ns_per_tick, sum / n * ns_per_tick);
	fflush(stdout);
	free(all);
	pthread_barrier_destroy(&go);
}

struct tp_arg {
	struct br_store *s;
	uint64_t bytes;
	uint64_t last;
};

static void *tp_thread(void *arg)
{
	struct tp_arg *a = arg;
	const uint32_t rec = 128 << 10;
	uint8_t *src = malloc(rec);

	memset(src, 0x5a, rec);
	for (uint64_t done = 0; done < a->bytes; done += rec) {
		struct br_resv r;

		if (br_store_reserve(a->s, rec, &r))
			abort();
		memcpy(r.ptr, src, rec);
		br_store_commit(a->s, &r);
		if (r.pos > a->last)
			a->last = r.pos;
	}
	free(src);
	return NULL;
}

static double bench_ring_disk(uint64_t bytes)
{
	struct br_store *s = open_store();
	struct tp_arg a[2] = { { s, bytes / 2, 0 }, { s, bytes / 2, 0 } };
	pthread_t t[2];
	double t0 = now_s(), dt;

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, tp_thread, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	if (br_store_sync(s, a[0].last > a[1].last ? a[0].last : a[1].last))
		abort();
	dt = now_s() - t0;
	br_store_close(s);
	return bytes / dt / (1 << 20);
}

static double bench_raw(uint64_t bytes)
{
	int fd = open(path, O_WRONLY | O_DIRECT);
	const size_t bs = 1 << 20;
	uint8_t *buf;
	double t0, dt;

	if (fd < 0 || posix_memalign((void **)&buf, 4096, bs))
		abort();
	memset(buf, 0x5a, bs);
	t0 = now_s();
	for (uint64_t off = 0; off < bytes; off += bs)
		if (pwrite(fd, buf, bs, (off_t)(LOG_START + off)) != (ssize_t)bs)
			abort();
	if (fdatasync(fd))
		abort();
	dt = now_s() - t0;
	close(fd);
	free(buf);
	return bytes / dt / (1 << 20);
}

int main(int argc, char **argv)
{
	const char *dir = "/var/tmp";
	uint64_t gib = 2;
	size_t ops = 1000000;
	unsigned thr[] = { 1, 2, 4 };
	uint32_t pay[] = { 64, 4096 };
	int opt, fd;
	double ring, raw;

	while ((opt = getopt(argc, argv, "d:s:n:N:b:Dh")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 's': gib = strtoull(optarg, NULL, 0); break;
		case 'n': ops = strtoull(optarg, NULL, 0); break;
		case 'N': nbuf = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'b': bufsize = (uint32_t)strtoul(optarg, NULL, 0) << 10; break;
		case 'D': only_disk = 1; break;
		default:
			fprintf(stderr, "usage: bench-ring [-d DIR] [-s GiB] [-n OPS] [-N buffers] [-b KiB] [-D]\n");
			return opt == 'h' ? 0 : 1;
		}
	}
	snprintf(path, sizeof(path), "%s/bench-ring-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "bench-ring: error: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	/* room for the largest latency run (4 threads x ops x 4 KiB) */
	log_bytes = (gib << 30) + (64ull << 20);
	if (4ull * ops * 4096 > log_bytes)
		log_bytes = 4ull * ops * 4096 + (64ull << 20);
	if (fallocate(fd, 0, 0, (off_t)(LOG_START + log_bytes))) {
		fprintf(stderr, "bench-ring: error: fallocate: %s\n", strerror(errno));
		unlink(path);
		return 1;
	}
	close(fd);
	calibrate();

	for (unsigned i = 0; i < 3 && !only_disk; i++)
		for (unsigned j = 0; j < 2; j++)
			bench_latency(thr[i], pay[j],
				      pay[j] == 64 ? ops : ops / 4);

	/* The disk's speed drifts from run to run: alternate the two and
	 * compare medians of three. */
	{
		double rr[3], rg[3];

		for (int i = 0; i < 3; i++) {
			rr[i] = bench_raw(gib << 30);
			rg[i] = bench_ring_disk(gib << 30);
		}
		qsort(rr, 3, sizeof(double), cmp_double);
		qsort(rg, 3, sizeof(double), cmp_double);
		raw = rr[1];
		ring = rg[1];
	}
	printf("bench=ring-disk bytes=%llu mib_s=%.0f ref_mib_s=%.0f ratio=%.2f\n",
	       (unsigned long long)(gib << 30), ring, raw, ring / raw);
	unlink(path);
	return 0;
}
