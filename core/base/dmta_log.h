/*
 * dmta_log.h - the severity ladder shared by every dmta program.
 *
 * SYNOPSIS
 *	dmta_log_init(progname, level);
 *	dmta_info("...");  dmta_warn("...");  dmta_err("...");
 *	dmta_fatal("...");  (bad config, start-up: exit 1)
 *	dmta_panic("...");  (a broken invariant: abort with a core)
 *
 * DESCRIPTION
 *	One line per message on stderr, "progname: severity: text", as Postfix
 *	does. warn is for what the program recovers from; fatal is for start-up
 *	and configuration errors (never used by the data plane after start-up);
 *	panic is for "cannot happen" and aborts so that a core is left.
 *	Thread-safe: each line is written with one write(2).
 */
#ifndef DMTA_LOG_H
#define DMTA_LOG_H

#include <stdarg.h>

enum dmta_log_level {
	DMTA_LOG_DEBUG = 0,
	DMTA_LOG_INFO = 1,
	DMTA_LOG_WARN = 2,
	DMTA_LOG_ERR = 3,
	DMTA_LOG_QUIET = 4,
};

/** Set the program name shown in each line and the lowest level printed. */
void dmta_log_init(const char *progname, enum dmta_log_level min_level);

/** Change the lowest level printed (e.g. -v). */
void dmta_log_set_level(enum dmta_log_level min_level);

/** The program name given to dmta_log_init() ("dmta" before). */
const char *dmta_log_progname(void);

void dmta_log(enum dmta_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dmta_vlog(enum dmta_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define dmta_debug(...) dmta_log(DMTA_LOG_DEBUG, __VA_ARGS__)
#define dmta_info(...)	dmta_log(DMTA_LOG_INFO, __VA_ARGS__)
#define dmta_warn(...)	dmta_log(DMTA_LOG_WARN, __VA_ARGS__)
#define dmta_err(...)	dmta_log(DMTA_LOG_ERR, __VA_ARGS__)

/** Log "fatal: ..." and exit(1). For start-up and configuration errors only. */
void dmta_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** Log "panic: ..." and abort(). For broken invariants. */
void dmta_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
