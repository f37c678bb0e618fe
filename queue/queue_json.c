/*
 * queue_json.c - see queue_json.h. A recursive-descent reader for exactly
 * the shape of one injection record; every read is bounded by the line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
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

/* A JSON string at j->p, decoded into a new NUL-terminated buffer. */
static int string(struct jp *j, char **out, size_t *olen)
{
	const char *s;
	char *buf, *o;

	ws(j);
	if (j->p >= j->end || *j->p != '"')
		return fail(j, "expected a string");
	s = ++j->p;
	/* Decoded text is never longer than the escaped text. */
	while (j->p < j->end && *j->p != '"') {
		if (*j->p == '\\')
			j->p++;
		j->p++;
	}
	if (j->p >= j->end)
		return fail(j, "unterminated string");
	buf = malloc((size_t)(j->p - s) + 1);
	if (buf == NULL)
		return -ENOMEM;
	for (o = buf; s < j->p; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20) {
			free(buf);
			return fail(j, "control character in string");
		}
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
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

			if (j->p - s < 5 || hex4(s + 1, &cp) < 0)
				goto bad_escape;
			s += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->p - s < 7 || s[1] != '\\' || s[2] != 'u' ||
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
	}
	*o = 0;
	j->p++; /* the closing quote */
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
	memset(rec, 0, sizeof(*rec));
}

int queue_json_inject(const char *line, size_t len, struct queue_inject *rec, const char **why)
{
	struct jp j = {line, line + len, NULL};
	bool seen_to = false, seen_notify = false, seen_ret = false;
	int rc;

	memset(rec, 0, sizeof(*rec));
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
