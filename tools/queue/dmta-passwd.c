/*
 * dmta-passwd - set a password in dmtad's users file ([listen] users).
 *
 * SYNOPSIS
 *	dmta-passwd [-c CONF] [-f FILE] [-d] USER
 *
 * DESCRIPTION
 *	Reads a password (twice from a terminal, with echo off; once, one
 *	line, from anything else) and writes "USER:HASH" into FILE (-f, else
 *	[listen] users of the configuration), replacing USER's line if there
 *	is one. The hash is crypt(3)'s preferred method (yescrypt on Debian)
 *	with a fresh salt from crypt_gensalt. -d removes USER instead. The
 *	file is rewritten through a temporary (mode 0600) and renamed, so
 *	dmtad never reads half of it; dmtad reads it at start.
 *	Without a file named anywhere, the line is printed on stdout.
 *
 * DIAGNOSTICS
 *	Exit 0, 64 usage, 65 bad password (empty, mismatch, control
 *	characters), 73 the file cannot be written, 78 configuration error.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "core/control/dmta_listen.h"
#include "tools/queue/queue_tool.h"

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: dmta-passwd [-c CONF] [-f FILE] [-d] USER\n");
	exit(EX_USAGE_);
}

static void __attribute__((noreturn)) die(int ex, const char *what, const char *detail)
{
	fprintf(stderr, "dmta-passwd: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(ex);
}

/* One line from stdin (echo off on a terminal), without its line end. */
static void read_line(const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	bool tty = isatty(0) && tcgetattr(0, &old) == 0;
	size_t n;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	if (fgets(buf, (int)cap, stdin) == NULL)
		buf[0] = '\0';
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
}

static const char *users_from_conf(const char *cli_conf)
{
	char err[512];
	struct dmta_conf *conf = dmta_conf_load(dmta_conf_path(cli_conf), err, sizeof(err));
	const char *users = NULL;

	if (conf == NULL)
		die(EX_CONFIG_, err, NULL);
	if (dmta_listen_users_path(conf, &users) != 0)
		die(EX_CONFIG_, "bad [listen] settings", NULL);
	/* The configuration stays loaded: users points into it. */
	return users;
}

/* FILE without USER's line, plus @p line when not NULL, through a temporary. */
static void rewrite(const char *path, const char *user, const char *line)
{
	char tmp[4096], buf[2048];
	size_t ulen = strlen(user);
	FILE *in = fopen(path, "re"), *out;
	int fd;

	if (in == NULL && errno != ENOENT)
		die(EX_CANTCREAT_, path, strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || (out = fdopen(fd, "w")) == NULL)
		die(EX_CANTCREAT_, tmp, strerror(errno));
	while (in && fgets(buf, sizeof(buf), in) != NULL)
		if (!(strncmp(buf, user, ulen) == 0 && buf[ulen] == ':'))
			fputs(buf, out);
	if (line)
		fprintf(out, "%s\n", line);
	if (in)
		fclose(in);
	if (fflush(out) != 0 || fsync(fd) != 0 || fclose(out) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		die(EX_CANTCREAT_, path, strerror(errno));
	}
}

int main(int argc, char **argv)
{
	const char *conf = NULL, *file = NULL, *user, *hash;
	char pw[512], again[512], salt[CRYPT_GENSALT_OUTPUT_SIZE], line[1024];
	struct crypt_data cd;
	bool del = false;
	int opt;

	dmta_log_init("dmta-passwd", DMTA_LOG_ERR);
	while ((opt = getopt(argc, argv, "c:f:d")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'd':
			del = true;
			break;
		default:
			usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	user = argv[optind];
	if (user[0] == '\0' || strpbrk(user, ": \t\r\n") != NULL)
		die(EX_USAGE_, "bad user name", "no colon, space or line end");
	if (file == NULL)
		file = users_from_conf(conf);
	if (del) {
		if (file == NULL)
			die(EX_USAGE_, "-d needs a users file", NULL);
		rewrite(file, user, NULL);
		return EX_OK_;
	}
	read_line("Password: ", pw, sizeof(pw));
	if (isatty(0)) {
		read_line("Again: ", again, sizeof(again));
		if (strcmp(pw, again) != 0)
			die(EX_DATAERR_, "the passwords differ", NULL);
		explicit_bzero(again, sizeof(again));
	}
	if (pw[0] == '\0')
		die(EX_DATAERR_, "empty password", NULL);
	for (const unsigned char *p = (const unsigned char *)pw; *p; p++)
		if (*p < 32 || *p == 127)
			die(EX_DATAERR_, "control character in the password", NULL);
	if (crypt_gensalt_rn(NULL, 0, NULL, 0, salt, sizeof(salt)) == NULL)
		die(EX_SOFTWARE_, "crypt_gensalt", strerror(errno));
	memset(&cd, 0, sizeof(cd));
	hash = crypt_r(pw, salt, &cd);
	explicit_bzero(pw, sizeof(pw));
	if (hash == NULL || hash[0] == '*')
		die(EX_SOFTWARE_, "crypt", strerror(errno));
	snprintf(line, sizeof(line), "%s:%s", user, hash);
	explicit_bzero(&cd, sizeof(cd));
	if (file == NULL) {
		printf("%s\n", line);
		return EX_OK_;
	}
	rewrite(file, user, line);
	return EX_OK_;
}
