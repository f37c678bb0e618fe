/*
 * queue_dkim.h - DKIM signing (RFC 6376) at acceptance: rsa-sha256 and
 * ed25519-sha256 (RFC 8463), through OpenSSL 3.
 *
 * SYNOPSIS
 *	d = queue_dkim_conf_load(conf, err, sizeof(err));
 *	if (queue_dkim_active(d))
 *		n = queue_dkim_sign_msg(d, &msg, time(NULL), &why);
 *	queue_dkim_free(d);
 *
 *	rc = queue_dkim_add(d, "example.org", "s1:/etc/dmta/s1.key", NULL,
 *			    "relaxed/relaxed", 0, err, sizeof(err));
 *	n = queue_dkim_sign(d, msg, len, now, &sigs, &why);
 *	queue_dkim_canon_header(relaxed, field, len, &out);
 *	queue_dkim_canon_body(relaxed, body, len, &out);
 *	rc = queue_dkim_key_load(path, &pkey, err, sizeof(err));
 *	rc = queue_dkim_dns_record(pkey, &txt);
 *
 * DESCRIPTION
 *	Configuration is one [dkim DOMAIN] section per signing domain:
 *	keys = SELECTOR:PATH[, SELECTOR:PATH...] (PEM private keys; RSA of
 *	2048 bits or more gives rsa-sha256, Ed25519 gives ed25519-sha256;
 *	several keys give several signatures), and optionally headers (names
 *	separated by ':' or ','; default below), canonicalization
 *	(HEADER/BODY, each relaxed or simple; a single word means WORD/simple
 *	as in RFC 6376's c= tag; default relaxed/relaxed) and expire (a
 *	duration; sets x= that long after t=; default none). Keys are read
 *	and checked once, when the configuration is loaded: an unreadable
 *	key, a key readable by group or others, or a key of another type or
 *	size is a configuration error.
 *
 *	The signing domain follows the From field's address: the section of
 *	that domain, else of its closest parent (d= is then the parent, as
 *	DMARC's relaxed alignment allows). No section, no signature.
 *
 *	Signing works on a message as queue_msg_render() writes it (CRLF
 *	lines, no line over 998 octets) and adds one DKIM-Signature field per
 *	key at its top, folded at 78 columns. Header and body are
 *	canonicalised as a stream over the message into SHA-256 through a
 *	small staging buffer: the message is never copied. Signed headers:
 *	each configured name as often as it occurs (absent ones are left
 *	out), From once more than it occurs so that no From can be added
 *	later. t= is always set; l= never.
 *
 *	A signer is read-only once loaded: any number of threads may sign
 *	with it at once.
 *
 * DIAGNOSTICS
 *	Loaders: NULL with errno set and one line in err. queue_dkim_sign:
 *	the number of signatures made (0: no section covers the From
 *	domain), -EBADMSG with *why set when the message cannot be signed
 *	correctly (no From field, several, or one whose address cannot be
 *	read), -ENOMEM, or -EIO when OpenSSL fails (*why set).
 */
#ifndef QUEUE_DKIM_H
#define QUEUE_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/queue_msg.h"

struct dmta_conf;
struct evp_pkey_st;
struct queue_dkim;

/** The header fields signed when a section names none. */
struct dmta_conf_section;

#define QUEUE_DKIM_DEFAULT_HEADERS                                                                 \
	"From:Reply-To:Subject:Date:To:Cc:Message-ID:In-Reply-To:References:MIME-Version:"         \
	"Content-Type:Content-Transfer-Encoding:List-Unsubscribe:List-Unsubscribe-Post:"           \
	"Feedback-ID"

/** Minimum RSA key size (RFC 8301). */
#define QUEUE_DKIM_RSA_MIN_BITS 2048

/** [dkim DOMAIN]: keys, headers, canonicalization, expire. */
extern const struct dmta_conf_section queue_dkim_conf_section;

/**
 * Every [dkim DOMAIN] section of @p conf, keys loaded and checked. A
 * configuration without any gives a signer that signs nothing. NULL with
 * errno set and @p err filled on a configuration error.
 */
struct queue_dkim *queue_dkim_conf_load(const struct dmta_conf *conf, char *err, size_t errlen);

/** An empty signer. NULL on ENOMEM. */
struct queue_dkim *queue_dkim_new(void);

/**
 * Add a signing domain. @p keys is "SELECTOR:PATH[, ...]"; @p headers NULL
 * means the default list; @p canon NULL means relaxed/relaxed; @p expire_s
 * 0 means no x=. 0, or -EINVAL / -ENOMEM with @p err filled.
 */
int queue_dkim_add(struct queue_dkim *d, const char *domain, const char *keys, const char *headers,
		   const char *canon, uint64_t expire_s, char *err, size_t errlen);

/** Whether any domain is configured. */
bool queue_dkim_active(const struct queue_dkim *d);

/** How many domains and keys are configured (for start-up logs). */
size_t queue_dkim_count(const struct queue_dkim *d, size_t *nkeys);

/** Call @p fn for each key of each domain, in configuration order. */
void queue_dkim_foreach_key(const struct queue_dkim *d,
			    void (*fn)(const char *domain, const char *selector,
				       struct evp_pkey_st *pkey, void *arg),
			    void *arg);

/**
 * Sign @p msg (@p len octets, CRLF lines) as of @p now: the DKIM-Signature
 * fields, each with its CRLF, are appended to @p sigs (the caller puts them
 * at the top of the message). Returns their number, or a negative errno as
 * the file comment says.
 */
int queue_dkim_sign(const struct queue_dkim *d, const char *msg, size_t len, time_t now,
		    struct queue_buf *sigs, const char **why);

/** queue_dkim_sign() on @p msg, whose signatures are then put at its top. */
int queue_dkim_sign_msg(const struct queue_dkim *d, struct queue_buf *msg, time_t now,
			const char **why);

void queue_dkim_free(struct queue_dkim *d);

/**
 * The canonical form (RFC 6376 section 3.4) of one header field (@p field:
 * "Name: value" with CRLF inside folds and no final CRLF), with its final
 * CRLF, appended to @p out. 0 or -ENOMEM.
 */
int queue_dkim_canon_header(bool relaxed, const char *field, size_t len, struct queue_buf *out);

/** The canonical form of a message body, appended to @p out. 0 or -ENOMEM. */
int queue_dkim_canon_body(bool relaxed, const char *body, size_t len, struct queue_buf *out);

/**
 * Read a PEM private key and check it as the configuration does (mode,
 * type, size). 0 with *@p pkey set, or -errno with @p err filled.
 */
int queue_dkim_key_load(const char *path, struct evp_pkey_st **pkey, char *err, size_t errlen);

/** The TXT record that publishes @p pkey's public half ("v=DKIM1; k=...; p=..."). */
int queue_dkim_dns_record(struct evp_pkey_st *pkey, struct queue_buf *txt);

#endif
