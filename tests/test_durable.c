/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The durable prefix on its own: completion order, group commit, errors. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "brtest.h"

#include "durable.h"

static int tmpfd(void)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/br-durable-XXXXXX", br_test_dir());
	fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

struct waiter {
	struct br_durable *d;
	uint64_t seq;
	int err;
	_Atomic int done;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->err = br_durable_wait(w->d, w->seq);
	atomic_store(&w->done, 1);
	return NULL;
}

static void test_durable_prefix_waits_for_holes(void **state)
{
	struct br_durable d;
	struct waiter w = { &d, 2, 0, 0 };
	pthread_t t;
	int fd = tmpfd();

	(void)state;
	assert_int_equal(br_durable_init(&d, fd, 1), 0);
	assert_int_equal(br_durable_get(&d), 0);
	br_durable_complete(&d, 2, 0);		/* out of order: 1 is a hole */
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&w.done), 0);
	assert_int_equal(br_durable_get(&d), 0);
	br_durable_complete(&d, 1, 0);
	pthread_join(t, NULL);
	assert_int_equal(w.err, 0);
	assert_int_equal(br_durable_get(&d), 2);
	assert_int_equal(d.flushes, 1);		/* one flush covered both */
	assert_int_equal(br_durable_wait(&d, 1), 0);
	assert_int_equal(d.flushes, 1);
	br_durable_destroy(&d);
	close(fd);
}

static void test_durable_failure_latches_and_wakes_waiters(void **state)
{
	struct br_durable d;
	struct waiter w = { &d, 3, 0, 0 };
	pthread_t t;
	int fd = tmpfd();

	(void)state;
	assert_int_equal(br_durable_init(&d, fd, 1), 0);
	br_durable_complete(&d, 1, 0);
	assert_int_equal(br_durable_wait(&d, 1), 0);
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(50 * 1000);
	br_durable_complete(&d, 2, -EIO);
	pthread_join(t, NULL);
	assert_int_equal(w.err, -EIO);
	br_durable_complete(&d, 3, 0);		/* after the hole: never durable */
	assert_int_equal(br_durable_wait(&d, 3), -EIO);
	assert_int_equal(br_durable_get(&d), 1);
	assert_int_equal(br_durable_wait(&d, 1), 0);	/* old promise holds */
	br_durable_destroy(&d);
	close(fd);
}

static void test_durable_failed_flush_latches_eio(void **state)
{
	struct br_durable d;

	(void)state;
	/* fdatasync on a closed fd fails: the flush error must latch */
	assert_int_equal(br_durable_init(&d, 1 << 20, 1), 0);
	br_durable_complete(&d, 1, 0);
	assert_int_equal(br_durable_wait(&d, 1), -EIO);
	assert_int_equal(br_durable_get(&d), 0);
	br_durable_destroy(&d);
}

static void test_durable_many_waiters_share_flushes(void **state)
{
	struct br_durable d;
	struct waiter w[16];
	pthread_t t[16];
	int fd = tmpfd();

	(void)state;
	assert_int_equal(br_durable_init(&d, fd, 1), 0);
	for (int i = 0; i < 16; i++) {
		w[i] = (struct waiter){ &d, (uint64_t)i + 1, 0, 0 };
		pthread_create(&t[i], NULL, wait_thread, &w[i]);
	}
	usleep(50 * 1000);
	for (uint64_t s = 16; s >= 1; s--)	/* complete in reverse */
		br_durable_complete(&d, s, 0);
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].err, 0);
	}
	assert_int_equal(br_durable_get(&d), 16);
	assert_true(d.flushes <= 2);
	br_durable_destroy(&d);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durable_prefix_waits_for_holes),
		cmocka_unit_test(test_durable_failure_latches_and_wakes_waiters),
		cmocka_unit_test(test_durable_failed_flush_latches_eio),
		cmocka_unit_test(test_durable_many_waiters_share_flushes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
