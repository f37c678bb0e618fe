/*
 * queue_addr.c - see queue_addr.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "queue/queue_addr.h"

/* Length of the UTF-8 sequence at p (1..4) if well formed, else 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int queue_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);

		if (n == 0)
			return -EILSEQ;
		i += n;
	}
	return 0;
}

static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int check_local(const unsigned char *p, size_t n, bool *utf8, const char **why)
{
	if (n == 0) {
		*why = "empty local part";
		return -EINVAL;
	}
	if (n > 64) {
		*why = "local part longer than 64 octets";
		return -EINVAL;
	}
	if (p[0] == '"') {
		/* Quoted-string: qtextSMTP or quoted-pairSMTP, then the closing quote. */
		size_t i = 1;

		while (i < n - 1) {
			if (p[i] == '<' || p[i] == '>' ||
			    (p[i] == '\\' && i + 1 < n - 1 &&
			     (p[i + 1] == '<' || p[i + 1] == '>'))) {
				/* RFC 5321 allows them quoted; the SMTP client refuses
				 * them (they end the path for many servers), so an
				 * address with one could never be delivered. */
				*why = "angle bracket in local part";
				return -EINVAL;
			}
			if (p[i] == '\\') {
				if (i + 1 >= n - 1 || p[i + 1] < 32 || p[i + 1] > 126)
					goto badq;
				i += 2;
			} else if (p[i] >= 0x80) {
				size_t k = utf8_seq(p + i, n - 1 - i);

				if (k == 0)
					goto badutf;
				*utf8 = true;
				i += k;
			} else if (p[i] < 32 || p[i] == 127 || p[i] == '"') {
				goto badq;
			} else {
				i++;
			}
		}
		if (n < 2 || p[n - 1] != '"' || i != n - 1)
			goto badq;
		return 0;
	}
	/* Dot-string: atoms separated by single dots. */
	for (size_t i = 0; i < n;) {
		if (p[i] == '.') {
			if (i == 0 || i == n - 1 || p[i - 1] == '.') {
				*why = "misplaced dot in local part";
				return -EINVAL;
			}
			i++;
		} else if (p[i] >= 0x80) {
			size_t k = utf8_seq(p + i, n - i);

			if (k == 0)
				goto badutf;
			*utf8 = true;
			i += k;
		} else if (is_atext(p[i])) {
			i++;
		} else {
			*why = p[i] < 32 || p[i] == 127 ? "control character in address"
							: "invalid character in local part";
			return -EINVAL;
		}
	}
	return 0;
badq:
	*why = "malformed quoted local part";
	return -EINVAL;
badutf:
	*why = "malformed UTF-8 in address";
	return -EINVAL;
}

static int check_domain(const unsigned char *p, size_t n, bool *utf8, const char **why)
{
	char lit[64];
	unsigned char a6[16];

	if (n == 0) {
		*why = "empty domain";
		return -EINVAL;
	}
	if (n > 255) {
		*why = "domain longer than 255 octets";
		return -EINVAL;
	}
	if (p[0] == '[') {
		if (p[n - 1] != ']' || n - 2 >= sizeof(lit))
			goto badlit;
		memcpy(lit, p + 1, n - 2);
		lit[n - 2] = 0;
		if (strncasecmp(lit, "IPv6:", 5) == 0) {
			if (inet_pton(AF_INET6, lit + 5, a6) != 1)
				goto badlit;
		} else if (inet_pton(AF_INET, lit, a6) != 1) {
			goto badlit;
		}
		return 0;
	}
	for (size_t i = 0, lab = 0; i <= n; i++) {
		if (i == n || p[i] == '.') {
			size_t start = i - lab;

			if (lab == 0) {
				*why = "empty label in domain";
				return -EINVAL;
			}
			if (lab > 63) {
				*why = "domain label longer than 63 octets";
				return -EINVAL;
			}
			if (p[start] == '-' || p[i - 1] == '-') {
				*why = "domain label starts or ends with a hyphen";
				return -EINVAL;
			}
			lab = 0;
			continue;
		}
		if (p[i] >= 0x80) {
			size_t k = utf8_seq(p + i, n - i);

			if (k == 0) {
				*why = "malformed UTF-8 in address";
				return -EINVAL;
			}
			*utf8 = true;
			i += k - 1;
			lab += k;
		} else if (is_letdig(p[i]) || p[i] == '-') {
			lab++;
		} else {
			*why = p[i] < 32 || p[i] == 127 ? "control character in address"
							: "invalid character in domain";
			return -EINVAL;
		}
	}
	return 0;
badlit:
	*why = "malformed address literal";
	return -EINVAL;
}

int queue_addr_check(const char *addr, size_t len, bool *utf8, const char **why)
{
	const unsigned char *p = (const unsigned char *)addr;
	size_t at;
	bool u = false;
	int rc;

	*why = NULL;
	if (len == 0) {
		*why = "empty address";
		return -EINVAL;
	}
	if (len > QUEUE_ADDR_MAX) {
		*why = "address longer than 254 octets";
		return -EINVAL;
	}
	if (memchr(p, 0, len) != NULL) {
		*why = "NUL in address";
		return -EINVAL;
	}
	/* The separating '@' is the last one: a quoted local part may hold '@'. */
	for (at = len; at > 0 && p[at - 1] != '@'; at--)
		;
	if (at == 0) {
		*why = "no domain (missing '@')";
		return -EINVAL;
	}
	at--;
	rc = check_local(p, at, &u, why);
	if (rc == 0)
		rc = check_domain(p + at + 1, len - at - 1, &u, why);
	if (rc == 0 && utf8)
		*utf8 = u;
	return rc;
}

/* RFC 5322 address lists. */

static size_t skip_comment(const char *s, size_t i, size_t len)
{
	int depth = 0;

	for (; i < len; i++) {
		if (s[i] == '\\') {
			i++;
		} else if (s[i] == '(') {
			depth++;
		} else if (s[i] == ')') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return 0; /* unterminated */
}

static size_t skip_quoted(const char *s, size_t i, size_t len)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return 0;
}

int queue_addr_list(const char *s, size_t len, int (*cb)(const char *addr, size_t len, void *arg),
		    void *arg)
{
	char cur[1024];
	size_t n = 0, i = 0, angle_start = 0, angle_len = 0;
	bool angle = false, overflow = false, gap = false;
	int count = 0, rc;

	while (i <= len) {
		char c = i < len ? s[i] : ',';

		if (c == '(') {
			size_t j = skip_comment(s, i, len);

			if (j == 0)
				return -EBADMSG;
			i = j;
			continue;
		}
		if (c == '"') {
			size_t j = skip_quoted(s, i, len);

			if (j == 0)
				return -EBADMSG;
			if (n + (j - i) < sizeof(cur)) {
				memcpy(cur + n, s + i, j - i);
				n += j - i;
			} else {
				overflow = true;
			}
			i = j;
			continue;
		}
		if (c == '<') {
			size_t j = i + 1;

			while (j < len && s[j] != '>') {
				if (s[j] == '"') {
					size_t k = skip_quoted(s, j, len);

					if (k == 0)
						return -EBADMSG;
					j = k;
				} else {
					j++;
				}
			}
			if (j >= len)
				return -EBADMSG;
			angle = true;
			angle_start = i + 1;
			angle_len = j - i - 1;
			/* An obsolete source route "@a,@b:" comes before the address. */
			if (angle_len && s[angle_start] == '@') {
				const char *colon = memchr(s + angle_start, ':', angle_len);

				if (colon != NULL) {
					angle_len -= (size_t)(colon + 1 - (s + angle_start));
					angle_start = (size_t)(colon + 1 - s);
				}
			}
			i = j + 1;
			continue;
		}
		if (c == '[') {
			/* A domain literal may hold ':' (IPv6); copy it whole. */
			const char *end = memchr(s + i, ']', len - i);
			size_t j = end ? (size_t)(end - s) + 1 : 0;

			if (j == 0)
				return -EBADMSG;
			if (n + (j - i) < sizeof(cur)) {
				memcpy(cur + n, s + i, j - i);
				n += j - i;
			} else {
				overflow = true;
			}
			i = j;
			continue;
		}
		if (c == ':' && !angle) {
			n = 0; /* a group's display name */
			gap = false;
			i++;
			continue;
		}
		if (c == ',' || c == ';') {
			const char *a = angle ? s + angle_start : cur;
			size_t alen = angle ? angle_len : n;

			if (!angle && overflow)
				return -EBADMSG;
			/* Trim blanks inside the angle brackets. */
			while (alen && (*a == ' ' || *a == '\t')) {
				a++;
				alen--;
			}
			while (alen && (a[alen - 1] == ' ' || a[alen - 1] == '\t'))
				alen--;
			if (alen > 0 || angle) {
				rc = cb(a, alen, arg);
				if (rc != 0)
					return rc;
				count++;
			}
			n = 0;
			angle = false;
			overflow = false;
			gap = false;
			i++;
			continue;
		}
		if (c == '>')
			return -EBADMSG;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			gap = n > 0;
			i++;
			continue;
		}
		/*
		 * Words separated by blanks outside angle brackets are a display
		 * name or a broken address; keep one blank so the check refuses it.
		 */
		if (gap && n + 1 < sizeof(cur))
			cur[n++] = ' ';
		gap = false;
		if (n + 1 < sizeof(cur))
			cur[n++] = c;
		else
			overflow = true;
		i++;
	}
	return count;
}
