/*
 * queue_json.c - see queue_json.h. A recursive-descent reader for exactly
 * the shape of one injection record; every read is bounded by the line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue_env.h"
#include "queue/queue_json.h"

struct jp {
	const char *p, *end;
	const char *why;
};

static void ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'))
		j->p++;
}

static int fail(struct jp *j, const char *why)
{
	if (j->why == NULL)
		j->why = why;
	return -EBADMSG;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Skip octets that need no decoding (not '"', '\\', nor a control
 * character), eight at a time while no word holds one (bit tricks for "has
 * a zero byte" and "has a byte below 0x20").
 */
static const char *plain_run(const char *s, const char *end)
{
	while (end - s >= 8) {
		uint64_t w, q, b;

		memcpy(&w, s, 8);
		q = w ^ (ONES * '"');
		b = w ^ (ONES * '\\');
		if ((((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w)) & HIGHS)
			break;
		s += 8;
	}
	while (s < end && (unsigned char)*s >= 0x20 && *s != '"' && *s != '\\')
		s++;
	return s;
}

/* The next '"' or '\\' at or after @p s, or @p end. */
static const char *quote_or_escape(const char *s, const char *end)
{
	while (end - s >= 8) {
		uint64_t w, q, b;

		memcpy(&w, s, 8);
		q = w ^ (ONES * '"');
		b = w ^ (ONES * '\\');
		if ((((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS)
			break;
		s += 8;
	}
	while (s < end && *s != '"' && *s != '\\')
		s++;
	return s;
}

/*
 * A JSON string at j->p, decoded into a new NUL-terminated buffer: the
 * decoded text is never longer than the escaped text, and runs without
 * escapes are copied whole.
 */
static int string(struct jp *j, char **out, size_t *olen)
{
	const char *s, *end = j->end;
	char *buf, *o;

	ws(j);
	if (j->p >= end || *j->p != '"')
		return fail(j, "expected a string");
	s = j->p + 1;
	/*
	 * Find the closing quote first so the buffer fits the string, not the
	 * rest of the line (a line may hold megabytes and many strings).
	 */
	{
		const char *q = s;

		for (;;) {
			q = quote_or_escape(q, end);
			if (q >= end)
				return fail(j, "unterminated string");
			if (*q == '"')
				break;
			if (end - q < 2)
				return fail(j, "unterminated string");
			q += 2; /* an escape and the octet it escapes */
		}
		buf = malloc((size_t)(q - s) + 1);
	}
	if (buf == NULL)
		return -ENOMEM;
	o = buf;
	for (;;) {
		const char *run = s;

		s = plain_run(s, end);
		memcpy(o, run, (size_t)(s - run));
		o += s - run;
		if (s >= end) {
			free(buf);
			return fail(j, "unterminated string");
		}
		if (*s == '"')
			break;
		if ((unsigned char)*s < 0x20) {
			free(buf);
			return fail(j, "control character in string");
		}
		/* an escape */
		if (end - s < 2)
			goto bad_escape;
		switch (*++s) {
		case '"':
		case '\\':
		case '/':
			*o++ = *s;
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u': {
			unsigned cp, lo;

			if (end - s < 5 || hex4(s + 1, &cp) < 0)
				goto bad_escape;
			s += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - s < 7 || s[1] != '\\' || s[2] != 'u' ||
				    hex4(s + 3, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					goto bad_escape;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				goto bad_escape;
			}
			if (cp == 0) {
				free(buf);
				return fail(j, "NUL in string");
			}
			o += put_utf8(o, cp);
			break;
		}
		default:
			goto bad_escape;
		}
		s++;
	}
	*o = 0;
	j->p = s + 1; /* after the closing quote */
	*out = buf;
	if (olen)
		*olen = (size_t)(o - buf);
	return 0;
bad_escape:
	free(buf);
	return fail(j, "bad escape in string");
}

static bool peek(struct jp *j, char c)
{
	ws(j);
	return j->p < j->end && *j->p == c;
}

/* Either one string or an array of strings. */
static int strings(struct jp *j, char ***out, size_t *n)
{
	size_t cap = 0;
	char *s;
	int rc;

	*out = NULL;
	*n = 0;
	if (!peek(j, '[')) {
		*out = malloc(sizeof(char *));
		if (*out == NULL)
			return -ENOMEM;
		rc = string(j, &(*out)[0], NULL);
		if (rc == 0)
			*n = 1;
		return rc;
	}
	j->p++;
	if (peek(j, ']')) {
		j->p++;
		return 0;
	}
	for (;;) {
		rc = string(j, &s, NULL);
		if (rc < 0)
			return rc;
		if (*n == cap) {
			char **v = realloc(*out, (cap ? cap * 2 : 8) * sizeof(*v));

			if (v == NULL) {
				free(s);
				return -ENOMEM;
			}
			*out = v;
			cap = cap ? cap * 2 : 8;
		}
		(*out)[(*n)++] = s;
		if (peek(j, ',')) {
			j->p++;
			continue;
		}
		if (peek(j, ']')) {
			j->p++;
			return 0;
		}
		return fail(j, "expected , or ] in array");
	}
}

static bool envid_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 33 || (unsigned char)s[n] > 126)
			return false;
	return n >= 1 && n <= 100;
}

static int notify_word(const char *w, uint8_t *n)
{
	if (strcasecmp(w, "never") == 0)
		*n |= QUEUE_NOTIFY_NEVER;
	else if (strcasecmp(w, "success") == 0)
		*n |= QUEUE_NOTIFY_SUCCESS;
	else if (strcasecmp(w, "failure") == 0)
		*n |= QUEUE_NOTIFY_FAILURE;
	else if (strcasecmp(w, "delay") == 0)
		*n |= QUEUE_NOTIFY_DELAY;
	else
		return -1;
	return 0;
}

void queue_json_inject_free(struct queue_inject *rec)
{
	free(rec->from);
	for (size_t i = 0; i < rec->nto; i++)
		free(rec->to[i]);
	free(rec->to);
	free(rec->data);
	free(rec->path);
	free(rec->envid);
	free(rec->pool);
	free(rec->tenant);
	memset(rec, 0, sizeof(*rec));
	rec->priority = -1;
}

int queue_json_inject(const char *line, size_t len, struct queue_inject *rec, const char **why)
{
	struct jp j = {line, line + len, NULL};
	bool seen_to = false, seen_notify = false, seen_ret = false;
	int rc;

	memset(rec, 0, sizeof(*rec));
	rec->priority = -1;
	if (!peek(&j, '{')) {
		rc = fail(&j, "not a JSON object");
		goto out;
	}
	j.p++;
	if (peek(&j, '}')) {
		j.p++;
		goto done;
	}
	for (;;) {
		char *key;

		rc = string(&j, &key, NULL);
		if (rc < 0)
			goto out;
		if (!peek(&j, ':')) {
			free(key);
			rc = fail(&j, "expected : after a key");
			goto out;
		}
		j.p++;
#define ONCE(cond)                                                                                 \
	if (cond) {                                                                                \
		free(key);                                                                         \
		rc = fail(&j, "duplicate key");                                                    \
		goto out;                                                                          \
	}
		if (strcmp(key, "from") == 0) {
			ONCE(rec->from != NULL);
			rc = string(&j, &rec->from, NULL);
		} else if (strcmp(key, "to") == 0) {
			ONCE(seen_to);
			seen_to = true;
			rc = strings(&j, &rec->to, &rec->nto);
		} else if (strcmp(key, "data") == 0) {
			ONCE(rec->data != NULL);
			rc = string(&j, &rec->data, &rec->data_len);
		} else if (strcmp(key, "path") == 0) {
			ONCE(rec->path != NULL);
			rc = string(&j, &rec->path, NULL);
		} else if (strcmp(key, "envid") == 0) {
			ONCE(rec->envid != NULL);
			rc = string(&j, &rec->envid, NULL);
			/* RFC 3461 ENVID: 1 to 100 characters, printable ASCII. */
			if (rc == 0 && !envid_ok(rec->envid))
				rc = fail(&j, "envid: 1 to 100 printable ASCII characters");
		} else if (strcmp(key, "pool") == 0 || strcmp(key, "tenant") == 0) {
			char **v = key[0] == 'p' ? &rec->pool : &rec->tenant;
			const char *w;

			ONCE(*v != NULL);
			rc = string(&j, v, NULL);
			if (rc == 0 && queue_tag_check(*v, &w) < 0)
				rc = fail(&j, key[0] == 'p' ? "pool: 1 to 64 characters of "
							      "A-Z a-z 0-9 . _ -"
							    : "tenant: 1 to 64 characters of "
							      "A-Z a-z 0-9 . _ -");
		} else if (strcmp(key, "priority") == 0) {
			char *v = NULL;

			ONCE(rec->priority >= 0);
			rc = string(&j, &v, NULL);
			if (rc == 0 && (rec->priority = queue_prio_parse(v)) < 0)
				rc = fail(&j, "priority must be \"high\", \"normal\" or \"bulk\"");
			free(v);
		} else if (strcmp(key, "ret") == 0) {
			char *v = NULL;

			ONCE(seen_ret);
			seen_ret = true;
			rc = string(&j, &v, NULL);
			if (rc == 0) {
				if (strcasecmp(v, "full") == 0)
					rec->ret = QUEUE_RET_FULL;
				else if (strcasecmp(v, "hdrs") == 0)
					rec->ret = QUEUE_RET_HDRS;
				else
					rc = fail(&j, "ret must be \"full\" or \"hdrs\"");
			}
			free(v);
		} else if (strcmp(key, "notify") == 0) {
			char **v = NULL;
			size_t n = 0;

			ONCE(seen_notify);
			seen_notify = true;
			rc = strings(&j, &v, &n);
			for (size_t i = 0; i < n; i++) {
				char *save, *w;

				for (w = strtok_r(v[i], ",", &save); rc == 0 && w;
				     w = strtok_r(NULL, ",", &save)) {
					while (*w == ' ')
						w++;
					if (notify_word(w, &rec->notify) < 0)
						rc = fail(&j, "notify: want never or "
							      "success,failure,delay");
				}
				free(v[i]);
			}
			free(v);
			if (rc == 0 && (rec->notify == 0 || ((rec->notify & QUEUE_NOTIFY_NEVER) &&
							     rec->notify != QUEUE_NOTIFY_NEVER)))
				rc = fail(&j, "notify: want never or success,failure,delay");
		} else {
			static __thread char msg[96];

			snprintf(msg, sizeof(msg), "unknown key \"%.60s\"", key);
			rc = fail(&j, msg);
		}
#undef ONCE
		free(key);
		if (rc < 0)
			goto out;
		if (peek(&j, ',')) {
			j.p++;
			continue;
		}
		if (peek(&j, '}')) {
			j.p++;
			break;
		}
		rc = fail(&j, "expected , or } in object");
		goto out;
	}
done:
	ws(&j);
	if (j.p != j.end) {
		rc = fail(&j, "trailing characters after the object");
		goto out;
	}
	if (rec->from == NULL)
		rc = fail(&j, "missing \"from\"");
	else if (rec->nto == 0)
		rc = fail(&j, "missing or empty \"to\"");
	else if ((rec->data == NULL) == (rec->path == NULL))
		rc = fail(&j, "need exactly one of \"data\" and \"path\"");
	else
		rc = 0;
out:
	if (rc < 0) {
		*why = rc == -ENOMEM ? "out of memory" : j.why;
		queue_json_inject_free(rec);
	}
	return rc;
}
