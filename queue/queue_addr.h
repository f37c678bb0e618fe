/*
 * queue_addr.h - mail addresses: RFC 5321 mailboxes and RFC 5322 lists.
 *
 * SYNOPSIS
 *	rc = queue_addr_check(addr, len, &utf8, &why);
 *	n = queue_addr_list(header_value, len, cb, arg);
 *	rc = queue_utf8_valid(p, len);
 *
 * DESCRIPTION
 *	queue_addr_check() accepts an RFC 5321 Mailbox (Local-part "@"
 *	(Domain / address-literal)) with the RFC 6531 extension: UTF-8 in the
 *	local part and in domain labels, which sets *utf8 (the message then
 *	needs SMTPUTF8). Limits: local part 64 octets, domain 255, labels 63,
 *	the whole address 254. No control characters, ever: that is what
 *	keeps header and command injection out.
 *
 *	queue_addr_list() walks an RFC 5322 address-list (a To/Cc/Bcc value):
 *	display names, comments, quoted strings, angle addresses, groups and
 *	folding whitespace; it calls @p cb with each address as written
 *	(comments and folding removed) for the caller to check.
 *
 * DIAGNOSTICS
 *	queue_addr_check: 0 or -EINVAL with *why set to a static reason.
 *	queue_addr_list: the number of addresses or -EBADMSG (unbalanced
 *	quote, comment or angle bracket); @p cb returning non-zero stops the
 *	walk and is returned.
 */
#ifndef QUEUE_ADDR_H
#define QUEUE_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define QUEUE_ADDR_MAX 254

int queue_addr_check(const char *addr, size_t len, bool *utf8, const char **why);

int queue_addr_list(const char *s, size_t len, int (*cb)(const char *addr, size_t len, void *arg),
		    void *arg);

/** 0 when @p p holds well-formed UTF-8 (no overlongs, no surrogates), else -EILSEQ. */
int queue_utf8_valid(const char *p, size_t len);

#endif
