/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Filesystem check (the engine of fsck.bringfs).
 *
 * What is checked, in order:
 *   1. both superblock copies: each decodes; they agree (a difference is
 *      reported, and repaired by rewriting both from the valid primary);
 *   2. both checkpoint slots (an all-zero slot is "unused", not an error;
 *      a damaged slot next to a valid one is an error a repair clears, as
 *      the reader ignores it anyway);
 *   3. the log: every buffer still on disk, segment by segment (segments
 *      are reused, so the chain from the start of the log ends early):
 *      header, CRC, record framing, seq rising within a segment; how many
 *      buffers and bytes it holds;
 *   4. the tree, loaded with the mount code (checkpoint + roll-forward):
 *      directory entries name existing inodes; every directory is reached
 *      from the root exactly once (no cycles, no directory hard links) and
 *      its parent field agrees; link counts equal the names (files) or
 *      2 + subdirectories (directories); no orphans (nlink > 0, no name);
 *      extents lie inside a buffer the log holds and end at or before the
 *      file size; the checkpoint's segment usage table agrees with its
 *      extents.
 *
 * Repairs (repair = true; the image must not be mounted): orphan files get
 * a name in /lost+found (a LINK record), dangling entries are dropped, link
 * counts and sizes are corrected in the map, a damaged superblock copy is
 * rewritten from the valid one, a damaged slot beside a valid one is
 * cleared; then a checkpoint records the repaired tree.  What cannot be
 * repaired (a log that does not load, orphan directories, directory
 * cycles) is left and counted.
 */
#ifndef BR_FSCK_H
#define BR_FSCK_H

#include <stdbool.h>
#include <stdint.h>

struct br_fsck_opts {
	bool repair;		/* else touch nothing (not even a lock) */
	bool verbose;		/* info messages too */
	/* Every finding, one line without newline.  level: 0 info, 1 error
	 * found, 2 error repaired, 3 warning (harmless, not counted as an
	 * error; -y may still tidy it up). */
	void (*report)(void *ctx, int level, const char *msg);
	/* Log scan progress, done <= total bytes (may be NULL). */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
};

struct br_fsck_result {
	unsigned errors;	/* found */
	unsigned fixed;		/* of those, repaired */
	uint64_t inodes, dirs, files, buffers, log_bytes;
};

/*
 * Check (and with o->repair, repair) the image.  0 when the check ran
 * (the findings are in *r), or an operational error: -EBUSY (mounted,
 * when repairing), -errno from open/read, -ENOMEM.  A tree that cannot be
 * loaded is a finding (r->errors), not an operational error.
 */
int br_fsck_run(const char *image, const struct br_fsck_opts *o,
		struct br_fsck_result *r);

#endif /* BR_FSCK_H */
