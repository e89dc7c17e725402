/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mkfs.bringfs: format a regular file or a block device (see mkfs.bringfs.8).
 *
 * Every check runs before the first byte is written, so a refusal leaves
 * the target exactly as it was (a missing image file is not even created).
 * Order of the writes, so that an interrupted mkfs never leaves something
 * that mounts: discard / preallocate, wipe foreign signatures, zero slot 1
 * and the first log block, write slot 0, sync, then the superblocks
 * (primary, sync, backup, sync).  Until the superblock is written the
 * target does not look like bringfs.
 *
 * Exit status: 0 done (or dry run), 1 refused or failed (as mkfs(8)).
 */
#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "super.h"

#define PROG "mkfs.bringfs"

/* Discard in pieces this large so progress can be shown and ^C works. */
#define DISCARD_CHUNK (1ull << 30)

struct opts {
	const char *target;
	const char *label;	/* NULL: no label */
	uint64_t size;		/* bytes, 0: not given */
	uint64_t seg_size;	/* bytes, 0: chosen from the size */
	uint64_t buf_size;	/* bytes, 0: chosen from the segment size */
	bool seg_given, buf_given;	/* -S / -b (even 0, refused later) */
	bool force, quiet, dry_run, keep;
};

/* What we learnt about the target while checking it. */
struct target {
	int fd;			/* -1 until opened */
	bool exists;		/* false: a new regular file will be created */
	bool is_blk;
	bool created;		/* we created the file: remove it on failure */
	uint64_t cur_size;	/* present size (0 for a new file) */
	uint64_t size;		/* size the filesystem will have */
	char *real;		/* realpath of the target, NULL for a new file */
};

static void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The one refusal format: "mkfs.bringfs: error: <reason>", one line. */
static void err_msg(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void warn_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void warn_msg(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: " PROG " [options] TARGET [SIZE]\n"
"Format TARGET (a regular file, created if missing, or a block device)\n"
"as a bringfs filesystem.\n"
"\n"
"  -s, --size SIZE          filesystem size; required for a new file, extends\n"
"                           or shrinks an existing file (default: its size)\n"
"  -b, --buffer-size SIZE   log buffer size, 64K..64M, multiple of 4096\n"
"                           (default 1M, at most half a segment)\n"
"  -S, --segment-size SIZE  segment size, multiple of the buffer size, up to\n"
"                           1G (default: 1M..8M, for at least 256 segments)\n"
"  -L, --label LABEL        volume label, at most 63 bytes of UTF-8\n"
"  -f, --force              format even if TARGET holds a filesystem or a\n"
"                           partition table\n"
"  -K, --keep               do not discard the blocks of a block device\n"
"  -n, --dry-run            check and print what would be done, write nothing\n"
"  -q, --quiet              print nothing but errors\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"SIZE is a number of bytes with an optional K, M, G or T suffix (powers of\n"
"1024); it must be a multiple of 4096 and at least 64M.\n");
}

/* "1G", "64M", "4096", "8MiB": bytes, or -EINVAL / -ERANGE. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (shift) {
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

/* "1 GiB" if whole, else "1.50 GiB"; for summaries. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	unsigned u = 0;
	double d = (double)v;

	while (u + 1 < sizeof(unit) / sizeof(unit[0]) && d >= 1024) {
		d /= 1024;
		u++;
	}
	if (d == (double)(uint64_t)d)
		snprintf(buf, len, "%llu %s", (unsigned long long)d, unit[u]);
	else
		snprintf(buf, len, "%.2f %s", d, unit[u]);
	return buf;
}

static int parse_size_opt(const char *what, const char *arg, uint64_t *out)
{
	int err = parse_size(arg, out);

	if (err) {
		err_msg("invalid %s '%s' (a number with an optional K, M, G or T suffix)",
			what, arg);
		return err;
	}
	return 0;
}

/* 0: run; 1: done (help/version printed); <0: usage error, reported. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "label", required_argument, NULL, 'L' },
		{ "size", required_argument, NULL, 's' },
		{ "buffer-size", required_argument, NULL, 'b' },
		{ "segment-size", required_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "keep", no_argument, NULL, 'K' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *size_arg = NULL;
	int c;

	opterr = 0;	/* we print our own one-line message */
	while ((c = getopt_long(argc, argv, ":fL:s:b:S:qnKVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o->force = true; break;
		case 'q': o->quiet = true; break;
		case 'n': o->dry_run = true; break;
		case 'K': o->keep = true; break;
		case 'L': o->label = optarg; break;
		case 's': size_arg = optarg; break;
		case 'b':
			if (parse_size_opt("buffer size", optarg, &o->buf_size))
				return -EINVAL;
			o->buf_given = true;
			break;
		case 'S':
			if (parse_size_opt("segment size", optarg, &o->seg_size))
				return -EINVAL;
			o->seg_given = true;
			break;
		case 'V':
			printf(PROG " %s\n", BR_VERSION);
			return 1;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			if (optopt)
				err_msg("option '-%c' needs an argument (try --help)", optopt);
			else
				err_msg("option '%s' needs an argument (try --help)",
					argv[optind - 1]);
			return -EINVAL;
		default:
			if (optopt)
				err_msg("unknown option '-%c' (try --help)", optopt);
			else
				err_msg("unknown option '%s' (try --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind >= argc) {
		err_msg("no target given (try --help)");
		return -EINVAL;
	}
	o->target = argv[optind++];
	if (optind < argc) {
		if (size_arg) {
			err_msg("size given twice, as -s and as an argument");
			return -EINVAL;
		}
		size_arg = argv[optind++];
	}
	if (optind < argc) {
		err_msg("unexpected argument '%s' (try --help)", argv[optind]);
		return -EINVAL;
	}
	if (size_arg) {
		if (parse_size_opt("size", size_arg, &o->size))
			return -EINVAL;
		if (o->size == 0) {
			err_msg("size 0 is below the minimum of 64 MiB");
			return -EINVAL;
		}
		if (o->size % BR_BLOCK_SIZE) {
			err_msg("size %llu is not a multiple of %u",
				(unsigned long long)o->size, BR_BLOCK_SIZE);
			return -EINVAL;
		}
	}
	if (o->buf_size > UINT32_MAX) {
		err_msg("buffer size %llu must be a multiple of 4096 from 64 KiB to 64 MiB",
			(unsigned long long)o->buf_size);
		return -EINVAL;
	}
	if (o->label) {
		struct br_super tmp;
		int err = br_super_set_label(&tmp, o->label);

		if (err == -ENAMETOOLONG) {
			err_msg("label is %zu bytes long, the maximum is %u",
				strlen(o->label), BR_LABEL_MAX);
			return err;
		}
		if (err) {
			err_msg("label is not valid UTF-8");
			return err;
		}
	}
	return 0;
}

/* Undo mountinfo's octal escapes (\040 for space ...) in place. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * Is the target mounted?  A block device: any mount of its dev_t.  An
 * image: any mount whose source is the image's path (the bringfs daemon
 * passes the image's absolute path as fsname, so a fuse.bringfs mount shows
 * it there).  0: not mounted; 1: mounted (reported); <0: cannot tell.
 */
static int check_mounted(const struct opts *o, const struct target *t,
			 const struct stat *st)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f) {
		err_msg("cannot read /proc/self/mountinfo: %s", strerror(errno));
		return -errno;
	}
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned maj, min;
		char *sep, *mnt, *fstype, *src, *save = NULL;
		char *tok;

		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		/* id parent maj:min root mountpoint ... */
		strtok_r(line, " ", &save);
		strtok_r(NULL, " ", &save);
		tok = strtok_r(NULL, " ", &save);
		if (!tok || sscanf(tok, "%u:%u", &maj, &min) != 2)
			continue;
		strtok_r(NULL, " ", &save);
		mnt = strtok_r(NULL, " ", &save);
		save = NULL;
		fstype = strtok_r(sep + 3, " ", &save);
		src = strtok_r(NULL, " \n", &save);
		if (!mnt || !fstype || !src)
			continue;
		unescape(mnt);
		unescape(src);
		if (t->is_blk) {
			found = makedev(maj, min) == st->st_rdev;
		} else {
			char *rsrc = realpath(src, NULL);

			found = rsrc && !strcmp(rsrc, t->real);
			free(rsrc);
		}
		if (found)
			err_msg("%s is mounted on %s (%s)", o->target, mnt, fstype);
	}
	free(line);
	fclose(f);
	return found;
}

/* Is the image the backing file of a loop device? 1: yes (reported). */
static int check_loop_backing(const struct opts *o, const struct target *t)
{
	char path[PATH_MAX + 64], back[PATH_MAX + 2];
	int found = 0;

	for (unsigned i = 0; i < 1024 && !found; i++) {
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "/sys/block/loop%u/loop/backing_file", i);
		f = fopen(path, "re");
		if (!f)
			continue;	/* unattached loop devices have no such file */
		n = fread(back, 1, sizeof(back) - 1, f);
		fclose(f);
		back[n] = '\0';
		if (n && back[n - 1] == '\n')
			back[n - 1] = '\0';
		if (!strcmp(back, t->real)) {
			err_msg("%s is in use as the backing file of /dev/loop%u (use -f to format it anyway)",
				o->target, i);
			found = 1;
		}
	}
	return found;
}

/* Our own magic in the primary or the backup position. */
static bool has_bringfs_magic(int fd, uint64_t size)
{
	uint64_t offs[2] = { 0, br_super_backup_off(size) };
	struct br_super_block d;

	for (int i = 0; i < 2; i++) {
		if (i && !offs[i])
			break;
		if (pread(fd, &d, sizeof(d), (off_t)offs[i]) == (ssize_t)sizeof(d) &&
		    br_le64_get(d.magic) == BR_SUPER_MAGIC)
			return true;
	}
	return false;
}

static blkid_probe probe_new(int fd)
{
	blkid_probe pr = blkid_new_probe();

	if (!pr)
		return NULL;
	if (blkid_probe_set_device(pr, fd, 0, 0)) {
		blkid_free_probe(pr);
		return NULL;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_MAGIC |
					  BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	return pr;
}

/*
 * Does the target hold a filesystem, a partition table or bringfs?  Like
 * mkfs.ext4, ask libblkid; libblkid does not know bringfs, so also look
 * for our magic.  0: nothing; 1: something (reported); <0: error.
 */
static int check_existing(const struct opts *o, const struct target *t)
{
	blkid_probe pr;
	const char *val = NULL;
	int rc;

	if (has_bringfs_magic(t->fd, t->cur_size)) {
		err_msg("%s already contains a bringfs filesystem (use -f to overwrite)",
			o->target);
		return 1;
	}
	pr = probe_new(t->fd);
	if (!pr) {
		err_msg("cannot probe %s for existing filesystems", o->target);
		return -EIO;
	}
	rc = blkid_do_fullprobe(pr);
	if (rc < 0) {
		err_msg("cannot probe %s for existing filesystems", o->target);
		blkid_free_probe(pr);
		return -EIO;
	}
	if (rc == 0) {
		if (!blkid_probe_lookup_value(pr, "TYPE", &val, NULL))
			err_msg("%s already contains a %s filesystem (use -f to overwrite)",
				o->target, val);
		else if (!blkid_probe_lookup_value(pr, "PTTYPE", &val, NULL))
			err_msg("%s already contains a %s partition table (use -f to overwrite)",
				o->target, val);
		else
			err_msg("%s already contains a signature libblkid recognises (use -f to overwrite)",
				o->target);
	}
	blkid_free_probe(pr);
	return rc == 0;
}

/* Erase every signature libblkid finds, as wipefs -a does, so the target
 * is not recognised as two things at once after we format it. */
static int wipe_signatures(const struct opts *o, const struct target *t)
{
	blkid_probe pr = probe_new(t->fd);
	int rc;

	if (!pr) {
		err_msg("cannot probe %s to wipe old signatures", o->target);
		return -EIO;
	}
	while ((rc = blkid_do_probe(pr)) == 0) {
		if (blkid_do_wipe(pr, 0)) {
			err_msg("cannot wipe an old signature on %s: %s", o->target,
				strerror(errno));
			blkid_free_probe(pr);
			return -EIO;
		}
	}
	blkid_free_probe(pr);
	if (rc < 0) {
		err_msg("cannot probe %s to wipe old signatures", o->target);
		return -EIO;
	}
	return 0;
}

static void discard_device(const struct opts *o, const struct target *t)
{
	bool progress = !o->quiet && isatty(STDOUT_FILENO);
	uint64_t off = 0;

	if (!o->quiet)
		printf("Discarding device blocks: ");
	while (off < t->size) {
		uint64_t range[2] = { off, t->size - off };

		if (range[1] > DISCARD_CHUNK)
			range[1] = DISCARD_CHUNK;
		if (ioctl(t->fd, BLKDISCARD, range)) {
			if (!o->quiet)
				printf("%s\n", errno == EOPNOTSUPP ? "not supported" : "failed");
			if (errno != EOPNOTSUPP)
				warn_msg("discard failed at byte %llu: %s",
					 (unsigned long long)off, strerror(errno));
			return;
		}
		off += range[1];
		if (progress) {
			printf("%3u%%\b\b\b\b", (unsigned)(off * 100 / t->size));
			fflush(stdout);
		}
	}
	if (!o->quiet)
		printf("done\n");
}

/* One zero block at a 4096-aligned offset. */
/*
 * Look at the target and decide everything; writes nothing.  On refusal
 * the message is printed and a negative value returned.
 */
static int inspect(const struct opts *o, struct target *t, struct br_super *sb)
{
	char why[160];
	struct stat st;
	uint64_t seg_size;
	uint32_t buf_size;
	int err;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (stat(o->target, &st)) {
		if (errno != ENOENT) {
			err_msg("cannot stat %s: %s", o->target, strerror(errno));
			return -errno;
		}
		if (!o->size) {
			err_msg("%s does not exist and no size was given (use -s SIZE)",
				o->target);
			return -EINVAL;
		}
		t->size = o->size;
		goto geometry;
	}
	t->exists = true;
	t->is_blk = S_ISBLK(st.st_mode);
	if (!t->is_blk && !S_ISREG(st.st_mode)) {
		err_msg("%s is not a regular file or a block device", o->target);
		return -EINVAL;
	}
	t->real = realpath(o->target, NULL);
	if (!t->real) {
		err_msg("cannot resolve %s: %s", o->target, strerror(errno));
		return -errno;
	}
	err = check_mounted(o, t, &st);
	if (err)
		return err < 0 ? err : -EBUSY;
	if (!t->is_blk && !o->force && check_loop_backing(o, t))
		return -EBUSY;

	/* O_EXCL on a block device fails with EBUSY if the kernel has it
	 * claimed (mounted, held by md/dm, or another O_EXCL opener). */
	t->fd = open(o->target, O_RDWR | O_CLOEXEC | (t->is_blk ? O_EXCL : 0));
	if (t->fd < 0) {
		err = -errno;
		if (err == -EBUSY)
			err_msg("%s is in use (mounted or held by another program)", o->target);
		else
			err_msg("cannot open %s for writing: %s", o->target, strerror(-err));
		return err;
	}
	if (t->is_blk) {
		int ro = 0;

		/* A read-only block device opens O_RDWR fine; its writes fail. */
		if (ioctl(t->fd, BLKROGET, &ro) == 0 && ro) {
			err_msg("cannot open %s for writing: the block device is read-only",
				o->target);
			return -EROFS;
		}
	}
	/* The daemon holds LOCK_EX on the image for as long as it is mounted;
	 * we hold it until we exit, so no mount starts half way through. */
	if (flock(t->fd, LOCK_EX | LOCK_NB)) {
		err = -errno;
		if (err == -EWOULDBLOCK)
			err_msg("%s is locked by another process (mounted by bringfs?)",
				o->target);
		else
			err_msg("cannot lock %s: %s", o->target, strerror(-err));
		return err;
	}
	err = br_super_device_size(t->fd, &t->cur_size);
	if (err) {
		err_msg("cannot get the size of %s: %s", o->target, strerror(-err));
		return err;
	}
	if (t->is_blk) {
		if (o->size && o->size != t->cur_size) {
			err_msg("size %llu differs from the size of %s, %llu (bringfs uses the whole device)",
				(unsigned long long)o->size, o->target,
				(unsigned long long)t->cur_size);
			return -EINVAL;
		}
		t->size = t->cur_size;
	} else if (o->size) {
		t->size = o->size;
	} else if (t->cur_size == 0) {
		err_msg("%s is empty and no size was given (use -s SIZE)", o->target);
		return -EINVAL;
	} else if (t->cur_size % BR_BLOCK_SIZE) {
		err_msg("size %llu of %s is not a multiple of %u (use -s SIZE)",
			(unsigned long long)t->cur_size, o->target, BR_BLOCK_SIZE);
		return -EINVAL;
	} else {
		t->size = t->cur_size;
	}

geometry:
	seg_size = o->seg_size;
	buf_size = o->buf_given ? (uint32_t)o->buf_size : BR_BUF_SIZE_DEFAULT;
	/* sizes not given scale with the device (super.h); a size given as
	 * 0 stays 0 and is refused by br_super_geometry with its reason */
	if (!o->seg_given || !o->buf_given) {
		uint64_t s = o->seg_given ? seg_size : 0;
		uint32_t b = o->buf_given ? buf_size : 0;

		if (!(o->seg_given && !s) && !(o->buf_given && !b)) {
			br_super_default_sizes(t->size, &s, &b);
			seg_size = s;
			buf_size = b;
		}
	}
	err = br_super_geometry(t->size, seg_size, buf_size, sb, why, sizeof(why));
	if (err) {
		err_msg("%s", why);
		return err;
	}
	if (t->exists && !o->force) {
		err = check_existing(o, t);
		if (err)
			return err < 0 ? err : -EEXIST;
	}
	return 0;
}

static int prepare_file(const struct opts *o, struct target *t)
{
	if (!t->exists) {
		t->fd = open(o->target, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (t->fd < 0) {
			err_msg("cannot create %s: %s", o->target, strerror(errno));
			return -errno;
		}
		t->created = true;
		if (flock(t->fd, LOCK_EX | LOCK_NB)) {
			err_msg("cannot lock %s: %s", o->target, strerror(errno));
			return -errno;
		}
	}
	if (t->cur_size != t->size && ftruncate(t->fd, (off_t)t->size)) {
		err_msg("cannot resize %s to %llu bytes: %s", o->target,
			(unsigned long long)t->size, strerror(errno));
		return -errno;
	}
	/* Allocate every block now, so the daemon's O_DIRECT writes never
	 * allocate (no ENOSPC surprise, no extent-tree work in the I/O path). */
	if (fallocate(t->fd, 0, 0, (off_t)t->size)) {
		if (errno == ENOSPC) {
			err_msg("not enough space to preallocate %llu bytes for %s",
				(unsigned long long)t->size, o->target);
			return -ENOSPC;
		}
		if (errno != EOPNOTSUPP) {
			err_msg("cannot preallocate %s: %s", o->target, strerror(errno));
			return -errno;
		}
		warn_msg("%s: the filesystem holding it cannot preallocate; blocks will be allocated on first write",
			 o->target);
	}
	return 0;
}

static int format(const struct opts *o, struct target *t, struct br_super *sb)
{
	struct br_slot slot = { 0 };
	struct br_super check;
	struct timespec now;
	int err;

	if (t->is_blk) {
		if (!o->keep)
			discard_device(o, t);
	} else {
		err = prepare_file(o, t);
		if (err)
			return err;
	}
	if (t->exists && o->force) {
		err = wipe_signatures(o, t);
		if (err)
			return err;
	}

	uuid_generate(sb->uuid);
	clock_gettime(CLOCK_REALTIME, &now);
	sb->ctime_sec = (uint64_t)now.tv_sec;
	sb->ctime_nsec = (uint32_t)now.tv_nsec;
	if (o->label)
		br_super_set_label(sb, o->label);	/* checked in parse_args */

	err = br_format(t->fd, sb);
	if (err) {
		err_msg("cannot write to %s: %s", o->target, strerror(-err));
		return err;
	}

	/* Read it back through the same code the daemon uses. */
	err = br_super_read(t->fd, &check);
	if (!err && (check.from_backup || memcmp(check.uuid, sb->uuid, sizeof(sb->uuid))))
		err = BR_ERR_CORRUPT;
	if (!err)
		err = br_slot_read_newest(t->fd, &check, &slot);
	if (err) {
		err_msg("%s does not read back what was written: %s", o->target,
			strerror(-err));
		return err;
	}
	return 0;
}

static void summary(const struct opts *o, const struct target *t,
		    const struct br_super *sb)
{
	char a[32], b[32], c[32], uuid[40];

	if (o->quiet)
		return;
	if (o->dry_run)
		printf("Dry run: would format %s; nothing was written.\n", o->target);
	printf("%s %s %s (%s%s)\n", o->dry_run ? "Would create" : "Created",
	       "bringfs filesystem on", o->target,
	       t->is_blk ? "block device" : "regular file",
	       t->exists ? "" : ", new");
	printf("  size:           %llu bytes (%s)\n", (unsigned long long)sb->dev_size,
	       human(sb->dev_size, a, sizeof(a)));
	printf("  block size:     %u\n", sb->block_size);
	printf("  buffer size:    %s\n", human(sb->buf_size, a, sizeof(a)));
	printf("  segment size:   %s\n", human(sb->seg_size, a, sizeof(a)));
	printf("  segments:       %llu, %llu for the log (%s .. %s, %s)\n",
	       (unsigned long long)sb->seg_count, (unsigned long long)sb->seg_count - 1,
	       human(sb->log_start, a, sizeof(a)), human(sb->log_end, b, sizeof(b)),
	       human(sb->log_end - sb->log_start, c, sizeof(c)));
	if (o->dry_run) {
		printf("  UUID:           (chosen when formatting)\n");
	} else {
		uuid_unparse_lower(sb->uuid, uuid);
		printf("  UUID:           %s\n", uuid);
	}
	printf("  label:          %s\n", o->label && *o->label ? o->label : "(none)");
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct target t;
	struct br_super sb;
	int err, status = 1;

	err = parse_args(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : 1;

	err = inspect(&o, &t, &sb);
	if (err)
		goto out_close;
	if (o.dry_run) {
		summary(&o, &t, &sb);
		status = 0;
		goto out_close;
	}
	err = format(&o, &t, &sb);
	if (err)
		goto out_unlink;
	if (fsync(t.fd)) {
		err_msg("cannot sync %s: %s", o.target, strerror(errno));
		goto out_unlink;
	}
	summary(&o, &t, &sb);
	status = 0;
	goto out_close;

out_unlink:
	/* A file we created and could not finish is not left behind. */
	if (t.created)
		unlink(o.target);
out_close:
	if (t.fd >= 0 && close(t.fd) && status == 0) {
		err_msg("cannot close %s: %s", o.target, strerror(errno));
		status = 1;
	}
	free(t.real);
	return status;
}
