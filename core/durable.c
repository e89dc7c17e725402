/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Durable prefix and group commit (see durable.h). */
#include "durable.h"

#include <errno.h>
#include <unistd.h>

int br_durable_init(struct br_durable *d, int fd, uint64_t first_seq)
{
	int err = -pthread_mutex_init(&d->lock, NULL);

	if (err)
		return err;
	err = -pthread_cond_init(&d->cond, NULL);
	if (err) {
		pthread_mutex_destroy(&d->lock);
		return err;
	}
	d->next = first_seq;
	d->done_mask = 0;
	d->flushing = 0;
	d->err = 0;
	d->flushes = 0;
	d->waits = 0;
	d->fd = fd;
	atomic_init(&d->durable, first_seq - 1);
	return 0;
}

void br_durable_destroy(struct br_durable *d)
{
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}

void br_durable_fail(struct br_durable *d, int err)
{
	pthread_mutex_lock(&d->lock);
	if (!d->err)
		d->err = err;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void br_durable_complete(struct br_durable *d, uint64_t seq, int err)
{
	if (err) {
		/* No position at or after a failed buffer is ever durable:
		 * `next` stops below it for good. */
		br_durable_fail(d, -EIO);
		return;
	}
	pthread_mutex_lock(&d->lock);
	/* The ring keeps at most its buffer count in flight, well inside the
	 * window. */
	d->done_mask |= 1ull << (seq % BR_DURABLE_WINDOW);
	while (d->done_mask & (1ull << (d->next % BR_DURABLE_WINDOW))) {
		d->done_mask &= ~(1ull << (d->next % BR_DURABLE_WINDOW));
		d->next++;
	}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

int br_durable_wait(struct br_durable *d, uint64_t seq)
{
	int err;

	if (br_durable_get(d) >= seq)
		return 0;
	pthread_mutex_lock(&d->lock);
	d->waits++;
	for (;;) {
		uint64_t target;

		if (atomic_load_explicit(&d->durable, memory_order_relaxed) >= seq) {
			err = 0;
			break;
		}
		if (d->err) {
			err = d->err;
			break;
		}
		if (d->flushing || d->next <= seq) {
			/* A flush is running (it may cover us; if not, we join
			 * the next one), or our buffer has not completed. */
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		/* Lead a flush for everything completed so far. */
		target = d->next - 1;
		d->flushing = 1;
		d->flushes++;
		pthread_mutex_unlock(&d->lock);
		err = fdatasync(d->fd) ? -errno : 0;
		pthread_mutex_lock(&d->lock);
		d->flushing = 0;
		if (err) {
			/* A failed flush may have lost written pages: nothing
			 * after the old prefix can be promised any more. */
			if (!d->err)
				d->err = -EIO;
		} else {
			/* release: pairs with the acquire in br_durable_get() */
			atomic_store_explicit(&d->durable, target,
					      memory_order_release);
		}
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}
