/*
 * spool_drop.c - see spool_drop.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue_addr.h"
#include "queue/spool_drop.h"

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int drop_dir(const char *spool_path)
{
	int sfd, dfd;

	/* The spool grants the group search (x) only: O_PATH needs no more. */
	sfd = open(spool_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	dfd = openat(sfd, SPOOL_DROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		dfd = -errno;
	close(sfd);
	return dfd;
}

int spool_drop_write(const char *spool_path, const struct queue_env *env, const void *msg,
		     size_t len, char *name, size_t namelen)
{
	char tmp[64], fin[64];
	unsigned char hdr[SPOOL_DROP_HDR];
	uint64_t rnd[2];
	size_t elen = queue_env_encoded_size(env);
	void *rec;
	long n;
	int dfd, fd, rc;

	if (elen > SPOOL_DROP_ENV_MAX)
		return -E2BIG;
	rec = malloc(elen);
	if (rec == NULL)
		return -ENOMEM;
	n = queue_env_encode(env, rec, elen);
	if (n < 0) {
		free(rec);
		return (int)n;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		free(rec);
		return -EIO;
	}
	dfd = drop_dir(spool_path);
	if (dfd < 0) {
		free(rec);
		return dfd;
	}
	snprintf(tmp, sizeof(tmp), ".tmp.%016llx", (unsigned long long)rnd[0]);
	snprintf(fin, sizeof(fin), "%llx.%d.%016llx", (unsigned long long)time(NULL), (int)getpid(),
		 (unsigned long long)rnd[1]);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	memcpy(hdr, SPOOL_DROP_MAGIC, 8);
	for (int i = 0; i < 4; i++)
		hdr[8 + i] = (unsigned char)((uint64_t)n >> (8 * i));
	rc = write_all(fd, hdr, sizeof(hdr));
	if (rc == 0)
		rc = write_all(fd, rec, (size_t)n);
	if (rc == 0)
		rc = write_all(fd, msg, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	/* Complete and durable: only now may dmtad see it. */
	if (rc == 0 && renameat(dfd, tmp, dfd, fin) < 0)
		rc = -errno;
	if (rc == 0 && fsync(dfd) < 0)
		rc = -errno;
	if (rc != 0)
		(void)unlinkat(dfd, tmp, 0);
	else if (name != NULL)
		snprintf(name, namelen, "%s", fin);
out:
	close(dfd);
	free(rec);
	return rc;
}

int spool_drop_open(const char *spool_path, const char *name, struct stat *st)
{
	int dfd = drop_dir(spool_path), fd;

	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(dfd);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_nlink != 1) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int bad(const char **why, const char *reason)
{
	*why = reason;
	return -EBADMSG;
}

int spool_drop_parse(const void *buf, size_t len, struct queue_env *env, const void **msg,
		     size_t *msglen, const char **why)
{
	const unsigned char *p = buf;
	struct queue_env in;
	const char *w;
	bool utf8 = false;
	uint32_t elen = 0;
	int rc;

	memset(env, 0, sizeof(*env));
	if (len < SPOOL_DROP_HDR || memcmp(p, SPOOL_DROP_MAGIC, 8) != 0)
		return bad(why, "not a maildrop file");
	for (int i = 0; i < 4; i++)
		elen |= (uint32_t)p[8 + i] << (8 * i);
	if (elen > SPOOL_DROP_ENV_MAX || elen > len - SPOOL_DROP_HDR)
		return bad(why, "envelope length past the end");
	rc = queue_env_decode(p + SPOOL_DROP_HDR, elen, &in);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return bad(why, "envelope record does not decode");
	if (in.nrcpt == 0) {
		queue_env_release(&in);
		return bad(why, "no recipients");
	}
	if (in.sender[0] && queue_addr_check(in.sender, strlen(in.sender), &utf8, &w) < 0) {
		queue_env_release(&in);
		return bad(why, "bad sender address");
	}
	/* Only what a user may choose; state, times and counts start afresh. */
	rc = queue_env_set_sender(env, in.sender);
	if (rc == 0)
		rc = queue_env_set_envid(env, in.envid);
	for (uint32_t i = 0; rc == 0 && i < in.nrcpt; i++) {
		const struct queue_rcpt *r = &in.rcpt[i];

		if (queue_addr_check(r->addr, strlen(r->addr), &utf8, &w) < 0) {
			rc = bad(why, "bad recipient address");
			break;
		}
		rc = queue_env_add_rcpt(env, r->addr, r->orcpt,
					r->notify & (QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE |
						     QUEUE_NOTIFY_DELAY | QUEUE_NOTIFY_NEVER));
	}
	if (rc == 0) {
		env->ret = in.ret <= QUEUE_RET_HDRS ? in.ret : QUEUE_RET_DEFAULT;
		env->flags = in.flags & (QUEUE_F_8BITMIME | QUEUE_F_SMTPUTF8);
		if (utf8)
			env->flags |= QUEUE_F_SMTPUTF8;
		*msg = p + SPOOL_DROP_HDR + elen;
		*msglen = len - SPOOL_DROP_HDR - elen;
	}
	queue_env_release(&in);
	if (rc != 0)
		queue_env_free(env);
	return rc;
}
