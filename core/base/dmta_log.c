/*
 * dmta_log.c - see dmta_log.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/dmta_log.h"

static const char *log_progname = "dmta";
static enum dmta_log_level log_min = DMTA_LOG_INFO;

void dmta_log_init(const char *progname, enum dmta_log_level min_level)
{
	const char *slash;

	if (progname != NULL) {
		slash = strrchr(progname, '/');
		log_progname = slash ? slash + 1 : progname;
	}
	log_min = min_level;
}

void dmta_log_set_level(enum dmta_log_level min_level)
{
	log_min = min_level;
}

const char *dmta_log_progname(void)
{
	return log_progname;
}

static const char *level_name(enum dmta_log_level level)
{
	switch (level) {
	case DMTA_LOG_DEBUG:
		return "debug: ";
	case DMTA_LOG_INFO:
		return "";
	case DMTA_LOG_WARN:
		return "warning: ";
	case DMTA_LOG_ERR:
		return "error: ";
	default:
		return "";
	}
}

__attribute__((format(printf, 2, 0))) static void log_line(const char *prefix, const char *fmt,
							   va_list ap)
{
	char buf[1024];
	int n, m;
	int saved = errno;

	n = snprintf(buf, sizeof(buf), "%s: %s", log_progname, prefix);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write per line keeps lines whole when threads log at once. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}

void dmta_vlog(enum dmta_log_level level, const char *fmt, va_list ap)
{
	if (level < log_min)
		return;
	log_line(level_name(level), fmt, ap);
}

void dmta_log(enum dmta_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dmta_vlog(level, fmt, ap);
	va_end(ap);
}

void dmta_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void dmta_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("panic: ", fmt, ap);
	va_end(ap);
	abort();
}
