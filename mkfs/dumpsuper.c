/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * br-dumpsuper IMAGE: print the superblock and both checkpoint slots as
 * key=value lines, for tests and for people debugging a filesystem.  Reads
 * through the same br_super_read / br_slot_decode as the daemon, so what
 * it prints is what a mount would see.  Exit 0 if the superblock and at
 * least one slot are valid, 1 otherwise.  Not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "super.h"

#define PROG "br-dumpsuper"

static const char *err_name(int err)
{
	if (err == BR_ERR_CORRUPT)
		return "corrupt";
	if (err == BR_ERR_UNSUPPORTED)
		return "unsupported";
	return strerror(-err);
}

static void print_super(const struct br_super *sb)
{
	char uuid[40];

	uuid_unparse_lower(sb->uuid, uuid);
	printf("source=%s\n", sb->from_backup ? "backup" : "primary");
	printf("version=%u\n", sb->version);
	printf("block_size=%u\n", sb->block_size);
	printf("buf_size=%u\n", sb->buf_size);
	printf("seg_size=%llu\n", (unsigned long long)sb->seg_size);
	printf("dev_size=%llu\n", (unsigned long long)sb->dev_size);
	printf("seg_count=%llu\n", (unsigned long long)sb->seg_count);
	printf("log_start=%llu\n", (unsigned long long)sb->log_start);
	printf("log_end=%llu\n", (unsigned long long)sb->log_end);
	printf("backup_off=%llu\n", (unsigned long long)sb->backup_off);
	printf("ctime=%llu.%09u\n", (unsigned long long)sb->ctime_sec, sb->ctime_nsec);
	printf("feat_compat=0x%llx\n", (unsigned long long)sb->feat_compat);
	printf("feat_ro_compat=0x%llx\n", (unsigned long long)sb->feat_ro_compat);
	printf("feat_incompat=0x%llx\n", (unsigned long long)sb->feat_incompat);
	printf("uuid=%s\n", uuid);
	printf("fsid=0x%016llx\n", (unsigned long long)br_super_fsid(sb));
	printf("label=%s\n", sb->label);
}

int main(int argc, char **argv)
{
	struct br_super sb;
	struct br_slot slot;
	int fd, err, status = 0;

	if (argc != 2) {
		fprintf(stderr, PROG ": error: usage: " PROG " IMAGE\n");
		return 1;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, PROG ": error: cannot open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	err = br_super_read(fd, &sb);
	if (err) {
		fprintf(stderr, PROG ": error: %s: superblock: %s\n", argv[1], err_name(err));
		close(fd);
		return 1;
	}
	print_super(&sb);
	for (unsigned w = 0; w < 2; w++) {
		_Alignas(BR_BLOCK_SIZE) uint8_t blk[BR_BLOCK_SIZE];
		ssize_t n = pread(fd, blk, sizeof(blk), (off_t)BR_SLOT_OFF(w));
		bool zero = true;

		if (n != (ssize_t)sizeof(blk)) {
			printf("slot%u=unreadable\n", w);
			continue;
		}
		for (size_t i = 0; i < sizeof(blk) && zero; i++)
			zero = !blk[i];
		err = br_slot_decode(&sb, blk, &slot);
		if (err)
			printf("slot%u=%s\n", w, zero ? "empty" : err_name(err));
		else
			printf("slot%u=seq:%llu ckpt_addr:%llu roll_addr:%llu roll_seq:%llu\n",
			       w, (unsigned long long)slot.seq,
			       (unsigned long long)slot.ckpt_addr,
			       (unsigned long long)slot.roll_addr,
			       (unsigned long long)slot.roll_seq);
	}
	err = br_slot_read_newest(fd, &sb, &slot);
	if (err) {
		fprintf(stderr, PROG ": error: %s: checkpoint slots: %s\n", argv[1],
			err_name(err));
		status = 1;
	} else {
		printf("newest_slot=%u\n", slot.which);
	}
	close(fd);
	return status;
}
