/*
 * queue_dkim.c - see queue_dkim.h.
 *
 * The model: canonicalisation is a filter between the message, left where
 * it is, and SHA-256, with a 4 KiB staging buffer in between so that the
 * hash is fed in large blocks (OpenDKIM's dkim-canon.c works the same way
 * over its own buffers). The body hash is made once per message; the
 * header hash once per signature, since each DKIM-Signature field hashes
 * itself. Both algorithms sign that SHA-256 digest: RSA as PKCS #1 v1.5
 * with a SHA-256 DigestInfo (exactly what EVP_DigestSign computes, minus a
 * second pass over the data), Ed25519 over the 32-octet digest itself, as
 * RFC 8463 section 3 says.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/base/dmta_conf.h"
#include "queue/queue_addr.h"
#include "queue/queue_dkim.h"

#define SIG_COLS       78 /* fold the DKIM-Signature field at this many columns */
#define SINK_CAP       4096
#define MAX_FIELD_NAME 128 /* a configured field name; sign_one's tag[] holds it */

enum dkim_alg { DKIM_RSA, DKIM_ED25519 };

struct dkim_key {
	char *selector;
	EVP_PKEY *pkey;
	enum dkim_alg alg;
};

struct dkim_domain {
	char *domain; /* lower case, the d= value */
	struct dkim_key *keys;
	size_t nkeys;
	char **hdrs; /* lower-case field names to sign; "from" is among them */
	size_t nhdrs;
	bool hrelaxed, brelaxed;
	uint64_t expire_s;
};

struct queue_dkim {
	struct dkim_domain *v;
	size_t n;
};

/*
 * SHA-256 fetched once per process: EVP_sha256() makes OpenSSL 3 look the
 * algorithm up (under a lock) at every EVP_DigestInit_ex(), twice per
 * signature. Never freed: it lives as long as the process.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

/* ------------------------------------------------------------------ sink */

/* Where canonical octets go: a hash, or (for tests) a buffer. */
struct sink {
	EVP_MD_CTX *md;
	struct queue_buf *out;
	size_t n;
	int rc;
	unsigned char buf[SINK_CAP];
};

static void sink_write(struct sink *s, const void *p, size_t n)
{
	if (s->md) {
		if (EVP_DigestUpdate(s->md, p, n) != 1)
			s->rc = -EIO;
	} else if (queue_buf_add(s->out, p, n) < 0) {
		s->rc = -ENOMEM;
	}
}

static void sink_flush(struct sink *s)
{
	if (s->n)
		sink_write(s, s->buf, s->n);
	s->n = 0;
}

static inline void sink_put(struct sink *s, const void *p, size_t n)
{
	if (s->n + n > SINK_CAP) {
		sink_flush(s);
		if (n >= SINK_CAP) {
			sink_write(s, p, n);
			return;
		}
	}
	memcpy(s->buf + s->n, p, n);
	s->n += n;
}

static inline void sink_byte(struct sink *s, unsigned char c)
{
	if (s->n == SINK_CAP)
		sink_flush(s);
	s->buf[s->n++] = c;
}

static inline bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The next CRLF in [p, end), or NULL. memchr is vectorised; memmem is not. */
static const char *find_crlf(const char *p, const char *end)
{
	const char *lf;

	while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (lf > p && lf[-1] == '\r')
			return lf - 1;
		p = lf + 1;
	}
	return NULL;
}

/*
 * Whether relaxed canonicalisation leaves a line's text as it is: no tab
 * and no two blanks in a row (the caller has checked its end). Eight
 * octets at a time; the zero-byte test may flag an octet that is not a
 * blank, which only sends the line down the slow path.
 */
static bool line_canonical(const char *p, size_t n)
{
	size_t i = 0;
	bool prev = false; /* the octet before p[i] is a space */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t carry = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w, t, sp, m;

		memcpy(&w, p + i, 8);
		t = w ^ (ones * '\t');
		if ((t - ones) & ~t & highs)
			return false;
		sp = w ^ (ones * ' ');
		m = (sp - ones) & ~sp & highs; /* high bit of each space octet */
		if (m & ((m << 8) | carry))
			return false;
		carry = m >> 56;
	}
	prev = carry != 0;
#endif
	for (; i < n; i++) {
		if (p[i] == '\t' || (p[i] == ' ' && prev))
			return false;
		prev = p[i] == ' ';
	}
	return true;
}

/* ------------------------------------------------------ canonicalisation */

/* RFC 6376 3.4.1 and 3.4.2, one field; @p crlf adds the final CRLF. */
static void canon_header(struct sink *s, bool relaxed, const char *f, size_t len, bool crlf)
{
	const char *colon, *end = f + len, *ne;
	bool started = false, wsp = false;

	if (!relaxed) {
		sink_put(s, f, len);
		if (crlf)
			sink_put(s, "\r\n", 2);
		return;
	}
	colon = memchr(f, ':', len);
	ne = colon ? colon : end;
	while (ne > f && is_wsp(ne[-1]))
		ne--;
	for (const char *q = f; q < ne; q++)
		sink_byte(s, (unsigned char)tolower((unsigned char)*q));
	sink_byte(s, ':');
	for (const char *q = colon ? colon + 1 : end; q < end; q++) {
		char c = *q;

		if (c == '\r' || c == '\n')
			continue; /* unfold */
		if (is_wsp(c)) {
			wsp = true;
			continue;
		}
		if (wsp && started)
			sink_byte(s, ' ');
		wsp = false;
		started = true;
		sink_byte(s, (unsigned char)c);
	}
	if (crlf)
		sink_put(s, "\r\n", 2);
}

/* RFC 6376 3.4.3 and 3.4.4. A last line without CRLF gets one. */
static void canon_body(struct sink *s, bool relaxed, const char *p, size_t len)
{
	const char *end = p + len;
	size_t blank = 0;

	if (!relaxed) {
		/* Simple: the body itself, less empty lines at its end; an empty
		 * body is one CRLF. No need to look at the lines in between. */
		if (len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n') {
			while (len >= 4 && memcmp(p + len - 4, "\r\n\r\n", 4) == 0)
				len -= 2;
			if (len == 2)
				len = 0;
			sink_put(s, p, len);
			if (len == 0)
				sink_put(s, "\r\n", 2);
		} else {
			sink_put(s, p, len);
			sink_put(s, "\r\n", 2);
		}
		return;
	}
	/*
	 * Most lines of real mail are canonical already (no tab, no run of
	 * blanks, none at the end): runs of such lines are hashed straight
	 * from the message; only the others are rewritten through the
	 * staging buffer.
	 */
	const char *span = NULL; /* start of lines hashed as they are */

	while (p < end) {
		const char *nl = find_crlf(p, end);
		const char *le = nl ? nl : end, *e = le;
		size_t n;

		while (e > p && is_wsp(e[-1]))
			e--;
		n = (size_t)(e - p);
		if (n == 0 || (e == le && nl && line_canonical(p, n))) {
			if (n == 0 && span) {
				sink_put(s, span, (size_t)(p - span));
				span = NULL;
			}
			if (n == 0) {
				blank++; /* kept back until a line with text follows */
			} else {
				for (; blank; blank--)
					sink_put(s, "\r\n", 2);
				if (span == NULL)
					span = p;
			}
		} else {
			bool wsp = false;

			if (span) {
				sink_put(s, span, (size_t)(p - span));
				span = NULL;
			}
			for (; blank; blank--)
				sink_put(s, "\r\n", 2);
			for (const char *q = p; q < e; q++) {
				if (is_wsp(*q)) {
					wsp = true;
					continue;
				}
				if (wsp)
					sink_byte(s, ' ');
				wsp = false;
				sink_byte(s, (unsigned char)*q);
			}
			sink_put(s, "\r\n", 2);
		}
		p = nl ? nl + 2 : end;
	}
	if (span)
		sink_put(s, span, (size_t)(p - span));
}

/* Canonicalise into a buffer rather than a hash: what the tests look at. */
static int canon_to_buf(bool relaxed, bool is_header, const char *p, size_t len,
			struct queue_buf *out)
{
	struct sink *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->out = out;
	if (is_header)
		canon_header(s, relaxed, p, len, true);
	else
		canon_body(s, relaxed, p, len);
	sink_flush(s);
	rc = s->rc;
	free(s);
	return rc;
}

int queue_dkim_canon_header(bool relaxed, const char *field, size_t len, struct queue_buf *out)
{
	return canon_to_buf(relaxed, true, field, len, out);
}

int queue_dkim_canon_body(bool relaxed, const char *body, size_t len, struct queue_buf *out)
{
	return canon_to_buf(relaxed, false, body, len, out);
}

/* ---------------------------------------------------------- the header */

struct field {
	const char *p;
	size_t len; /* without the final CRLF */
	size_t name_len;
};

struct fields {
	struct field *v;
	size_t n, cap;
	size_t body; /* offset of the body */
};

/* Length of the field name if @p line starts a field ("Name:"), else 0. */
static size_t field_start(const char *line, size_t len)
{
	size_t i = 0, name;

	while (i < len && (unsigned char)line[i] > 32 && (unsigned char)line[i] < 127 &&
	       line[i] != ':')
		i++;
	name = i;
	while (i < len && is_wsp(line[i]))
		i++;
	return name > 0 && i < len && line[i] == ':' ? name : 0;
}

/*
 * Where each header field is, as pointers into the message. The header
 * ends at the empty line, or (as queue_msg_parse() reads it) at the first
 * line that is neither a field nor a continuation.
 */
static int index_fields(const char *msg, size_t len, struct fields *fs)
{
	size_t pos = 0;

	fs->body = len;
	while (pos < len) {
		const char *line = msg + pos;
		const char *nl = find_crlf(line, msg + len);
		size_t n = nl ? (size_t)(nl - line) : len - pos, name;

		if (n == 0) {
			fs->body = pos + 2;
			return 0;
		}
		if (is_wsp(line[0]) && fs->n > 0) {
			struct field *f = &fs->v[fs->n - 1];

			f->len = (size_t)(line + n - f->p);
		} else if ((name = field_start(line, n)) > 0) {
			if (fs->n == fs->cap) {
				size_t cap = fs->cap ? fs->cap * 2 : 32;
				struct field *v = realloc(fs->v, cap * sizeof(*v));

				if (v == NULL)
					return -ENOMEM;
				fs->v = v;
				fs->cap = cap;
			}
			fs->v[fs->n++] = (struct field){line, n, name};
		} else {
			fs->body = pos;
			return 0;
		}
		pos += n + (nl ? 2 : 0);
	}
	return 0;
}

static bool field_is(const struct field *f, const char *name, size_t nl)
{
	return f->name_len == nl && strncasecmp(f->p, name, nl) == 0;
}

struct from_addr {
	char addr[QUEUE_ADDR_MAX + 1];
	int n;
	bool too_long;
};

static int from_cb(const char *a, size_t len, void *arg)
{
	struct from_addr *fa = arg;

	if (fa->n++ == 0) {
		if (len > QUEUE_ADDR_MAX) {
			fa->too_long = true;
			return 0;
		}
		memcpy(fa->addr, a, len);
		fa->addr[len] = 0;
	}
	return 0;
}

/*
 * The From field's domain, lower case, into @p dom. 1 found, 0 the address
 * has no domain DKIM can name (an address literal), or -EBADMSG.
 */
static int from_domain(const struct fields *fs, char *dom, size_t cap, const char **why)
{
	const struct field *from = NULL;
	struct from_addr fa = {.n = 0};
	const char *at;
	char *v, *o;
	bool utf8;

	for (size_t i = 0; i < fs->n; i++)
		if (field_is(&fs->v[i], "from", 4)) {
			if (from) {
				*why = "more than one From: field";
				return -EBADMSG;
			}
			from = &fs->v[i];
		}
	if (from == NULL) {
		*why = "no From: field";
		return -EBADMSG;
	}
	/* The value, unfolded. */
	v = malloc(from->len + 1);
	if (v == NULL)
		return -ENOMEM;
	o = v;
	for (const char *q = memchr(from->p, ':', from->len) + 1; q < from->p + from->len; q++)
		if (*q != '\r' && *q != '\n')
			*o++ = *q;
	*o = 0;
	if (queue_addr_list(v, (size_t)(o - v), from_cb, &fa) < 0) {
		free(v);
		*why = "the From: field cannot be parsed (unbalanced quote, comment or bracket)";
		return -EBADMSG;
	}
	free(v);
	if (fa.n != 1) {
		*why = fa.n ? "the From: field holds more than one address"
			    : "the From: field holds no address";
		return -EBADMSG;
	}
	if (fa.too_long || queue_addr_check(fa.addr, strlen(fa.addr), &utf8, why) < 0) {
		if (fa.too_long)
			*why = "the From: address is too long";
		return -EBADMSG;
	}
	at = strrchr(fa.addr, '@');
	if (at[1] == '[')
		return 0;
	if (strlen(at + 1) >= cap) {
		*why = "the From: domain is too long";
		return -EBADMSG;
	}
	for (o = dom, at++; *at; at++)
		*o++ = (char)tolower((unsigned char)*at);
	*o = 0;
	if (o > dom && o[-1] == '.')
		o[-1] = 0;
	return 1;
}

static const struct dkim_domain *find_domain(const struct queue_dkim *d, const char *dom)
{
	for (const char *c = dom; c != NULL;) {
		for (size_t i = 0; i < d->n; i++)
			if (strcmp(d->v[i].domain, c) == 0)
				return &d->v[i];
		c = strchr(c, '.');
		if (c)
			c++;
	}
	return NULL;
}

/* ------------------------------------------------- the signature field */

/* Writes a field folded at SIG_COLS columns; continuation lines start with SP. */
struct fold {
	struct queue_buf *b;
	size_t col;
	int rc;
};

/*
 * Append @p w, after a space when @p sp, on a new line when it and
 * @p after more octets do not fit on this one.
 */
static void fold_put(struct fold *f, const char *w, size_t n, bool sp, size_t after)
{
	if (f->col + (sp ? 1 : 0) + n + after > SIG_COLS && f->col > 1) {
		if (queue_buf_add(f->b, "\r\n ", 3) < 0)
			f->rc = -ENOMEM;
		f->col = 1;
	} else if (sp) {
		if (queue_buf_add(f->b, " ", 1) < 0)
			f->rc = -ENOMEM;
		f->col++;
	}
	if (queue_buf_add(f->b, w, n) < 0)
		f->rc = -ENOMEM;
	f->col += n;
}

static void fold_word(struct fold *f, const char *w, size_t n, bool sp)
{
	fold_put(f, w, n, sp, 0);
}

/*
 * Start tag @p tag so that at least @p minval octets of its value fit after
 * it. The tag and the first octets of its value stay on one line, so a
 * verifier that deletes b='s value finds the very text we hashed.
 */
static void fold_tag(struct fold *f, const char *tag, size_t minval)
{
	fold_put(f, tag, strlen(tag), true, minval);
}

/* A base64 value, which may be folded anywhere (RFC 6376 base64string). */
static void fold_value(struct fold *f, const char *v)
{
	size_t n = strlen(v);

	while (n > 0) {
		size_t room = SIG_COLS - f->col, k = n < room ? n : room;

		if (k == 0) {
			if (queue_buf_add(f->b, "\r\n ", 3) < 0)
				f->rc = -ENOMEM;
			f->col = 1;
			continue;
		}
		if (queue_buf_add(f->b, v, k) < 0)
			f->rc = -ENOMEM;
		f->col += k;
		v += k;
		n -= k;
	}
}

static void b64(const unsigned char *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* The names for h=: each configured one as often as present, From once more. */
static int sign_list(const struct dkim_domain *dd, const struct fields *fs, const char ***list,
		     size_t *n)
{
	size_t cap = 0, k = 0;
	const char **v = NULL;

	for (size_t i = 0; i < dd->nhdrs; i++) {
		const char *name = dd->hdrs[i];
		size_t nl = strlen(name), c = 0;

		for (size_t j = 0; j < fs->n; j++)
			c += field_is(&fs->v[j], name, nl);
		if (strcmp(name, "from") == 0)
			c++;
		while (c--) {
			if (k == cap) {
				const char **w;

				cap = cap ? cap * 2 : 32;
				w = realloc(v, cap * sizeof(*v));
				if (w == NULL) {
					free(v);
					return -ENOMEM;
				}
				v = w;
			}
			v[k++] = name;
		}
	}
	*list = v;
	*n = k;
	return 0;
}

/* The k-th field named @p name counting from the bottom, or NULL. */
static const struct field *nth_from_bottom(const struct fields *fs, const char *name, size_t k)
{
	size_t nl = strlen(name);

	for (size_t j = fs->n; j-- > 0;)
		if (field_is(&fs->v[j], name, nl) && k-- == 0)
			return &fs->v[j];
	return NULL;
}

static int sign_digest(const struct dkim_key *k, const unsigned char *dig, unsigned char *sig,
		       size_t *siglen)
{
	int ok = 0;

	if (k->alg == DKIM_RSA) {
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);

		ok = pc && EVP_PKEY_sign_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, sha256()) == 1 &&
		     EVP_PKEY_sign(pc, sig, siglen, dig, 32) == 1;
		EVP_PKEY_CTX_free(pc);
	} else {
		EVP_MD_CTX *mc = EVP_MD_CTX_new();

		ok = mc && EVP_DigestSignInit_ex(mc, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1 &&
		     EVP_DigestSign(mc, sig, siglen, dig, 32) == 1;
		EVP_MD_CTX_free(mc);
	}
	return ok ? 0 : -EIO;
}

/* One DKIM-Signature field for key @p k, appended to @p out. */
static int sign_one(const struct dkim_domain *dd, const struct dkim_key *k, const struct fields *fs,
		    const char **hl, size_t nh, const char *bh, time_t now, struct sink *s,
		    struct queue_buf *out)
{
	struct queue_buf h = {0};
	struct fold f = {&h, 0, 0};
	unsigned char dig[32], sig[1024];
	char tag[600], b[1400];
	size_t siglen = sizeof(sig);
	unsigned diglen;
	int rc;

	if (EVP_PKEY_get_size(k->pkey) > (int)sizeof(sig))
		return -EIO;
	fold_word(&f, "DKIM-Signature:", 15, false);
	fold_word(&f, "v=1;", 4, true);
	fold_word(&f, k->alg == DKIM_RSA ? "a=rsa-sha256;" : "a=ed25519-sha256;",
		  k->alg == DKIM_RSA ? 13 : 17, true);
	snprintf(tag, sizeof(tag), "c=%s/%s;", dd->hrelaxed ? "relaxed" : "simple",
		 dd->brelaxed ? "relaxed" : "simple");
	fold_word(&f, tag, strlen(tag), true);
	snprintf(tag, sizeof(tag), "d=%s;", dd->domain);
	fold_word(&f, tag, strlen(tag), true);
	snprintf(tag, sizeof(tag), "s=%s;", k->selector);
	fold_word(&f, tag, strlen(tag), true);
	snprintf(tag, sizeof(tag), "t=%" PRIu64 ";", (uint64_t)now);
	fold_word(&f, tag, strlen(tag), true);
	if (dd->expire_s) {
		snprintf(tag, sizeof(tag), "x=%" PRIu64 ";", (uint64_t)now + dd->expire_s);
		fold_word(&f, tag, strlen(tag), true);
	}
	for (size_t i = 0; i < nh; i++) {
		snprintf(tag, sizeof(tag), "%s%s%s", i ? ":" : "h=", hl[i], i + 1 == nh ? ";" : "");
		fold_word(&f, tag, strlen(tag), i == 0);
	}
	fold_tag(&f, "bh=", 8);
	fold_value(&f, bh);
	fold_word(&f, ";", 1, false);
	fold_tag(&f, "b=", 8);
	if (f.rc < 0) {
		queue_buf_free(&h);
		return f.rc;
	}

	/* The header hash: the signed fields, then this one with b= empty. */
	s->n = 0;
	s->rc = 0;
	if (EVP_DigestInit_ex(s->md, sha256(), NULL) != 1) {
		queue_buf_free(&h);
		return -EIO;
	}
	for (size_t i = 0; i < nh; i++) {
		size_t nth = 0;
		const struct field *fl;

		for (size_t j = 0; j < i; j++)
			nth += strcmp(hl[j], hl[i]) == 0;
		fl = nth_from_bottom(fs, hl[i], nth);
		if (fl)
			canon_header(s, dd->hrelaxed, fl->p, fl->len, true);
	}
	canon_header(s, dd->hrelaxed, h.p, h.len, false);
	sink_flush(s);
	rc = s->rc;
	if (rc == 0 && EVP_DigestFinal_ex(s->md, dig, &diglen) != 1)
		rc = -EIO;
	if (rc == 0)
		rc = sign_digest(k, dig, sig, &siglen);
	if (rc == 0) {
		b64(sig, siglen, b);
		fold_value(&f, b);
		rc = f.rc;
	}
	if (rc == 0 && (rc = queue_buf_add(&h, "\r\n", 2)) == 0)
		rc = queue_buf_add(out, h.p, h.len);
	queue_buf_free(&h);
	return rc;
}

int queue_dkim_sign(const struct queue_dkim *d, const char *msg, size_t len, time_t now,
		    struct queue_buf *sigs, const char **why)
{
	struct fields fs = {0};
	const struct dkim_domain *dd;
	struct sink *s = NULL;
	const char **hl = NULL;
	size_t nh = 0;
	unsigned char bh[32];
	char bh64[48], dom[256];
	unsigned diglen;
	int rc, made = 0;

	*why = NULL;
	if (d == NULL || d->n == 0)
		return 0;
	if ((rc = index_fields(msg, len, &fs)) < 0)
		return rc;
	rc = from_domain(&fs, dom, sizeof(dom), why);
	if (rc <= 0)
		goto out;
	if ((dd = find_domain(d, dom)) == NULL) {
		rc = 0; /* no section: no signature */
		goto out;
	}
	s = malloc(sizeof(*s));
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	s->out = NULL;
	s->n = 0;
	s->rc = 0;
	s->md = EVP_MD_CTX_new();
	if (s->md == NULL || EVP_DigestInit_ex(s->md, sha256(), NULL) != 1) {
		rc = -EIO;
		goto out;
	}
	canon_body(s, dd->brelaxed, msg + fs.body, len - fs.body);
	sink_flush(s);
	if ((rc = s->rc) < 0)
		goto out;
	if (EVP_DigestFinal_ex(s->md, bh, &diglen) != 1) {
		rc = -EIO;
		goto out;
	}
	b64(bh, sizeof(bh), bh64);
	if ((rc = sign_list(dd, &fs, &hl, &nh)) < 0)
		goto out;
	for (size_t i = 0; i < dd->nkeys; i++) {
		rc = sign_one(dd, &dd->keys[i], &fs, hl, nh, bh64, now, s, sigs);
		if (rc < 0)
			goto out;
		made++;
	}
	rc = made;
out:
	if (rc == -EIO) {
		unsigned long e = ERR_get_error();

		*why = e ? ERR_reason_error_string(e) : "OpenSSL failed";
		if (*why == NULL)
			*why = "OpenSSL failed";
		ERR_clear_error();
	} else if (rc == -ENOMEM) {
		*why = "out of memory";
	}
	if (s)
		EVP_MD_CTX_free(s->md);
	free(s);
	free(hl);
	free(fs.v);
	return rc;
}

int queue_dkim_sign_msg(const struct queue_dkim *d, struct queue_buf *msg, time_t now,
			const char **why)
{
	struct queue_buf sigs = {0};
	size_t old = msg->len;
	int n = queue_dkim_sign(d, msg->p ? msg->p : "", msg->len, now, &sigs, why);

	if (n > 0) {
		/* Grow by the signatures' size, then move the message down. */
		if (queue_buf_add(msg, sigs.p, sigs.len) < 0) {
			*why = "out of memory";
			n = -ENOMEM;
		} else {
			memmove(msg->p + sigs.len, msg->p, old);
			memcpy(msg->p, sigs.p, sigs.len);
		}
	}
	queue_buf_free(&sigs);
	return n;
}

/* ------------------------------------------------------------------ keys */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1; /* never prompt: an encrypted key is a configuration error */
}

int queue_dkim_key_load(const char *path, EVP_PKEY **pkey, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	BIO *bio;
	EVP_PKEY *k;

	*pkey = NULL;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot read key %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key %s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
			 "key %s is open to group or others (mode %04o): a private key must be "
			 "mode 0600 (chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	bio = BIO_new_fd(fd, BIO_CLOSE);
	if (bio == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (k == NULL) {
		unsigned long e = ERR_get_error();
		const char *r = e ? ERR_reason_error_string(e) : NULL;

		ERR_clear_error();
		snprintf(err, errlen, "key %s: not a PEM private key without passphrase (%s)", path,
			 r ? r : "no PEM data");
		return -EINVAL;
	}
	if (EVP_PKEY_is_a(k, "RSA")) {
		if (EVP_PKEY_get_bits(k) < QUEUE_DKIM_RSA_MIN_BITS) {
			snprintf(err, errlen, "key %s: RSA key of %d bits; DKIM wants %d or more",
				 path, EVP_PKEY_get_bits(k), QUEUE_DKIM_RSA_MIN_BITS);
			EVP_PKEY_free(k);
			return -EINVAL;
		}
	} else if (!EVP_PKEY_is_a(k, "ED25519")) {
		const char *t = EVP_PKEY_get0_type_name(k);

		snprintf(err, errlen, "key %s: a %s key; DKIM signs with RSA or Ed25519", path,
			 t ? t : "unknown");
		EVP_PKEY_free(k);
		return -EINVAL;
	}
	*pkey = k;
	return 0;
}

int queue_dkim_dns_record(EVP_PKEY *pkey, struct queue_buf *txt)
{
	unsigned char raw[64], *der = NULL;
	const unsigned char *pub;
	size_t n = sizeof(raw);
	char *enc;
	int len, rc;
	bool rsa = EVP_PKEY_is_a(pkey, "RSA");

	if (rsa) {
		len = i2d_PUBKEY(pkey, &der);
		if (len <= 0)
			return -EIO;
		pub = der;
		n = (size_t)len;
	} else {
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1)
			return -EIO;
		pub = raw;
	}
	enc = malloc(4 * ((n + 2) / 3) + 1);
	if (enc == NULL) {
		OPENSSL_free(der);
		return -ENOMEM;
	}
	b64(pub, n, enc);
	OPENSSL_free(der);
	rc = queue_buf_adds(txt, rsa ? "v=DKIM1; k=rsa; p=" : "v=DKIM1; k=ed25519; p=");
	if (rc == 0)
		rc = queue_buf_adds(txt, enc);
	free(enc);
	return rc;
}

/* --------------------------------------------------------- configuration */

struct queue_dkim *queue_dkim_new(void)
{
	return calloc(1, sizeof(struct queue_dkim));
}

bool queue_dkim_active(const struct queue_dkim *d)
{
	return d != NULL && d->n > 0;
}

size_t queue_dkim_count(const struct queue_dkim *d, size_t *nkeys)
{
	size_t k = 0;

	for (size_t i = 0; d && i < d->n; i++)
		k += d->v[i].nkeys;
	if (nkeys)
		*nkeys = k;
	return d ? d->n : 0;
}

void queue_dkim_foreach_key(const struct queue_dkim *d,
			    void (*fn)(const char *domain, const char *selector, EVP_PKEY *pkey,
				       void *arg),
			    void *arg)
{
	for (size_t i = 0; d && i < d->n; i++)
		for (size_t k = 0; k < d->v[i].nkeys; k++)
			fn(d->v[i].domain, d->v[i].keys[k].selector, d->v[i].keys[k].pkey, arg);
}

static void domain_free(struct dkim_domain *dd)
{
	for (size_t i = 0; i < dd->nkeys; i++) {
		free(dd->keys[i].selector);
		EVP_PKEY_free(dd->keys[i].pkey);
	}
	free(dd->keys);
	for (size_t i = 0; i < dd->nhdrs; i++)
		free(dd->hdrs[i]);
	free(dd->hdrs);
	free(dd->domain);
}

void queue_dkim_free(struct queue_dkim *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++)
		domain_free(&d->v[i]);
	free(d->v);
	free(d);
}

/* A domain name or selector: dot-separated labels of letters, digits, '-', '_'. */
static bool dns_name_ok(const char *s)
{
	size_t label = 0;

	if (*s == 0 || strlen(s) > 253)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*s) || *s == '-' || *s == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* Copy [p, p+n) trimmed of blanks, malloc'd. */
static char *trimdup(const char *p, size_t n)
{
	char *s;

	while (n && isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static int add_keys(struct dkim_domain *dd, const char *keys, char *err, size_t errlen)
{
	for (const char *p = keys; *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char *item = trimdup(p, n), *colon, *sel, *path;
		struct dkim_key *k, *v;
		int rc;

		p += n + (comma ? 1 : 0);
		if (item == NULL)
			return -ENOMEM;
		if (item[0] == 0) {
			free(item);
			continue;
		}
		colon = strchr(item, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "keys: \"%s\" is not SELECTOR:PATH", item);
			free(item);
			return -EINVAL;
		}
		sel = trimdup(item, (size_t)(colon - item));
		path = trimdup(colon + 1, strlen(colon + 1));
		free(item);
		if (sel == NULL || path == NULL) {
			free(sel);
			free(path);
			return -ENOMEM;
		}
		if (!dns_name_ok(sel) || path[0] == 0) {
			snprintf(err, errlen, "keys: bad selector \"%s\" or empty path", sel);
			free(sel);
			free(path);
			return -EINVAL;
		}
		v = realloc(dd->keys, (dd->nkeys + 1) * sizeof(*v));
		if (v == NULL) {
			free(sel);
			free(path);
			return -ENOMEM;
		}
		dd->keys = v;
		k = &dd->keys[dd->nkeys];
		rc = queue_dkim_key_load(path, &k->pkey, err, errlen);
		free(path);
		if (rc < 0) {
			free(sel);
			return rc == -ENOMEM ? rc : -EINVAL;
		}
		k->selector = sel;
		k->alg = EVP_PKEY_is_a(k->pkey, "RSA") ? DKIM_RSA : DKIM_ED25519;
		dd->nkeys++;
	}
	if (dd->nkeys == 0) {
		snprintf(err, errlen, "keys: no SELECTOR:PATH given");
		return -EINVAL;
	}
	return 0;
}

static int add_headers(struct dkim_domain *dd, const char *list, char *err, size_t errlen)
{
	bool from = false;

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ":, \t");
		char *name, **v;

		if (n == 0) {
			p++;
			continue;
		}
		if (n > MAX_FIELD_NAME) {
			snprintf(err, errlen,
				 "headers: field name \"%.40s...\" longer than %d octets", p,
				 MAX_FIELD_NAME);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] <= 32 || (unsigned char)p[i] >= 127) {
				snprintf(err, errlen, "headers: bad field name \"%.*s\"", (int)n,
					 p);
				return -EINVAL;
			}
		name = malloc(n + 1);
		v = realloc(dd->hdrs, (dd->nhdrs + 1) * sizeof(*v));
		if (name == NULL || v == NULL) {
			free(name);
			if (v)
				dd->hdrs = v;
			return -ENOMEM;
		}
		dd->hdrs = v;
		for (size_t i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)p[i]);
		name[n] = 0;
		p += n;
		for (size_t i = 0; i < dd->nhdrs; i++)
			if (strcmp(dd->hdrs[i], name) == 0) {
				/* Each name once: its count comes from the message. */
				free(name);
				name = NULL;
				break;
			}
		if (name == NULL)
			continue;
		from |= strcmp(name, "from") == 0;
		if (strcmp(name, "dkim-signature") == 0) {
			snprintf(err, errlen, "headers: DKIM-Signature cannot be signed");
			free(name);
			return -EINVAL;
		}
		dd->hdrs[dd->nhdrs++] = name;
	}
	if (!from) {
		/* RFC 6376 5.4: From must be signed. */
		char **v = realloc(dd->hdrs, (dd->nhdrs + 1) * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		dd->hdrs = v;
		memmove(v + 1, v, dd->nhdrs * sizeof(*v));
		if ((v[0] = strdup("from")) == NULL)
			return -ENOMEM;
		dd->nhdrs++;
	}
	return 0;
}

static int parse_canon(const char *s, bool *hrel, bool *brel)
{
	const char *slash = strchr(s, '/');
	size_t hn = slash ? (size_t)(slash - s) : strlen(s);

	if (hn == 7 && strncasecmp(s, "relaxed", 7) == 0)
		*hrel = true;
	else if (hn == 6 && strncasecmp(s, "simple", 6) == 0)
		*hrel = false;
	else
		return -EINVAL;
	if (slash == NULL)
		*brel = false; /* RFC 6376 3.5 c=: "relaxed" alone is relaxed/simple */
	else if (strcasecmp(slash + 1, "relaxed") == 0)
		*brel = true;
	else if (strcasecmp(slash + 1, "simple") == 0)
		*brel = false;
	else
		return -EINVAL;
	return 0;
}

int queue_dkim_add(struct queue_dkim *d, const char *domain, const char *keys, const char *headers,
		   const char *canon, uint64_t expire_s, char *err, size_t errlen)
{
	struct dkim_domain dd = {0}, *v;
	int rc;

	dd.domain = trimdup(domain, strlen(domain));
	if (dd.domain == NULL)
		return -ENOMEM;
	for (char *c = dd.domain; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (!dns_name_ok(dd.domain)) {
		snprintf(err, errlen, "\"%s\" is not a domain name", dd.domain);
		rc = -EINVAL;
		goto fail;
	}
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].domain, dd.domain) == 0) {
			snprintf(err, errlen, "domain %s configured twice", dd.domain);
			rc = -EINVAL;
			goto fail;
		}
	if (parse_canon(canon ? canon : "relaxed/relaxed", &dd.hrelaxed, &dd.brelaxed) < 0) {
		snprintf(err, errlen,
			 "canonicalization: \"%s\": want relaxed/relaxed, relaxed/simple, "
			 "simple/relaxed or simple/simple",
			 canon);
		rc = -EINVAL;
		goto fail;
	}
	dd.expire_s = expire_s;
	if ((rc = add_headers(&dd, headers ? headers : QUEUE_DKIM_DEFAULT_HEADERS, err, errlen)) <
		0 ||
	    (rc = add_keys(&dd, keys ? keys : "", err, errlen)) < 0)
		goto fail;
	v = realloc(d->v, (d->n + 1) * sizeof(*v));
	if (v == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	d->v = v;
	d->v[d->n++] = dd;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	domain_free(&dd);
	return rc;
}

/* [dkim DOMAIN]: one family of sections, declared once. */
struct dkim_keys {
	const char *keys, *headers, *canon;
	uint64_t expire_ms;
};

#define DK(m) DMTA_CONF_AT(struct dkim_keys, m)
static const struct dmta_conf_key dkim_keys[] = {
    {.name = "keys",
     .type = DMTA_CONF_STR,
     .example = "ed1:/etc/dmta/dkim/ed1.key, rsa1:/etc/dmta/dkim/rsa1.key",
     DK(keys),
     .help = "SELECTOR:PATH of PEM private keys, mode 0600, made with \"dmta-dkim genkey\";\n"
	     "RSA (2048 bits or more) signs rsa-sha256, Ed25519 signs ed25519-sha256;\n"
	     "several keys, several signatures."},
    {.name = "headers",
     .type = DMTA_CONF_STR,
     .example = "From:To:Subject:Date:Message-ID",
     DK(headers),
     .help = "Fields to sign (From is always signed, and over-signed). The default:\n"
	     "From, Reply-To, Subject, Date, To, Cc, Message-ID, In-Reply-To, References,\n"
	     "MIME-Version, Content-Type, Content-Transfer-Encoding, List-Unsubscribe,\n"
	     "List-Unsubscribe-Post, Feedback-ID."},
    {.name = "canonicalization",
     .type = DMTA_CONF_STR,
     .def = "relaxed/relaxed",
     DK(canon),
     .help = "HEADER/BODY, each relaxed or simple (one word: WORD/simple, as c= reads)"},
    {.name = "expire",
     .type = DMTA_CONF_DURATION,
     .def = "0",
     .max = DMTA_CONF_DAY(366),
     DK(expire_ms),
     .help = "Sets x= this long after t= (0: no x=)"},
};

const struct dmta_conf_section queue_dkim_conf_section = {
    .name = "dkim example.org",
    .help = "DKIM signing at acceptance, one section per signing domain (the From\n"
	    "domain, or a parent: [dkim example.org] also signs for news.example.org,\n"
	    "with d=example.org). No section, no signature.",
    .keys = dkim_keys,
    .nkeys = DMTA_CONF_NKEYS(dkim_keys),
    .family = true,
};

struct load_ctx {
	const struct dmta_conf *conf;
	struct queue_dkim *d;
	char *err;
	size_t errlen;
	int rc;
};

static void load_section(const char *sect, void *arg)
{
	struct load_ctx *lc = arg;
	struct dkim_keys k = {NULL, NULL, "relaxed/relaxed", 0};
	char why[512];

	if (lc->rc != 0)
		return;
	if (dmta_conf_read_over(lc->conf, sect, &queue_dkim_conf_section, &k) != 0) {
		snprintf(lc->err, lc->errlen, "%s: [%s]: invalid settings",
			 dmta_conf_source(lc->conf), sect);
		lc->rc = -EINVAL;
		return;
	}
	lc->rc = queue_dkim_add(lc->d, sect + 5, k.keys, k.headers, k.canon,
				(k.expire_ms + 999) / 1000, why, sizeof(why));
	if (lc->rc < 0)
		snprintf(lc->err, lc->errlen, "%s: [%s] %s", dmta_conf_source(lc->conf), sect, why);
}

struct queue_dkim *queue_dkim_conf_load(const struct dmta_conf *conf, char *err, size_t errlen)
{
	struct load_ctx lc = {conf, queue_dkim_new(), err, errlen, 0};

	if (lc.d == NULL) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	dmta_conf_sections(conf, "dkim ", load_section, &lc);
	if (lc.rc < 0) {
		queue_dkim_free(lc.d);
		errno = -lc.rc;
		return NULL;
	}
	return lc.d;
}
