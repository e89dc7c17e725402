/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by the core modules. */
#ifndef BR_UTIL_H
#define BR_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* printf a one-line reason into why[0..len) for the caller's error message;
 * nothing if why is NULL or len is 0. */
void br_why(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* pread / pwrite until all len bytes moved (EINTR and short transfers are
 * continued).  0, -errno, or -ENODATA when the device ends first.  Fine on
 * O_DIRECT fds when buf, len and off are block aligned. */
int br_pread_full(int fd, void *buf, size_t len, uint64_t off);
int br_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Make the array *v (of *cap elements of `elem` bytes; v is the address
 * of the array pointer) hold at least `need` elements, doubling from
 * `first`.  0, or -ENOMEM with *v and *cap unchanged. */
int br_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first);

/*
 * A background thread (the checkpoint and cleaner threads) that sleeps
 * until its period passes or it is kicked, until told to stop.  Its
 * function holds `lock` whenever it looks at `stop` or waits, and drops
 * it around its work.
 */
struct br_worker {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* on CLOCK_MONOTONIC */
	pthread_t thread;
	bool running, stop;
};

void br_worker_init(struct br_worker *w);
/* Stops the thread (if running) first. */
void br_worker_destroy(struct br_worker *w);
/* Start fn(arg) unless running.  0 or -errno from pthread_create. */
int br_worker_start(struct br_worker *w, void *(*fn)(void *), void *arg);
/* Set stop, wake the thread and join it (nothing if not running). */
void br_worker_stop(struct br_worker *w);
/* Wake the thread early. */
void br_worker_kick(struct br_worker *w);
/* With lock held: sleep until kicked, stopped or ms milliseconds passed. */
void br_worker_wait(struct br_worker *w, unsigned ms);

#endif /* BR_UTIL_H */
