/*
 * queue_env.c - envelopes and their on-disk records; see queue_env.h and
 * queue/FORMAT.md.
 *
 * Integers are little-endian and copied with memcpy, so a record can sit at
 * any alignment (LMDB gives no alignment promise for values).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue_env.h"

#define ENV_MAGIC  "DQEV"
#define ENV_V1	   1 /* no priority, pool or tenant */
#define ENV_HDR	   64
#define STR_NULL   0xffffffffu
#define RCPT_FIXED 16
#define MAX_RCPT   (1u << 20)

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
	__atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

#if defined(__x86_64__)
/* The CRC32 instruction of SSE4.2 computes this very CRC (Castagnoli), eight
 * bytes an instruction instead of a table look-up a byte. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *b,
							    size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; b += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, b, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	crc = (uint32_t)c;
	for (; len > 0; b++, len--)
		crc = __builtin_ia32_crc32qi(crc, *b);
	return crc;
}
#endif

uint32_t queue_crc32c(uint32_t crc, const void *p, size_t len)
{
	const unsigned char *b = p;

	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_hw(crc, b, len);
#endif
	if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
		crc_init();
	while (len--)
		crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

const char *queue_rcpt_state_name(unsigned state)
{
	switch (state) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_DELIVERED:
		return "delivered";
	case QUEUE_RCPT_DEFERRED:
		return "deferred";
	case QUEUE_RCPT_BOUNCED:
		return "bounced";
	default:
		return "unknown";
	}
}

static const char *const prio_names[] = {
    [QUEUE_PRIO_NORMAL] = "normal",
    [QUEUE_PRIO_HIGH] = "high",
    [QUEUE_PRIO_BULK] = "bulk",
};

const char *queue_prio_name(unsigned prio)
{
	return prio <= QUEUE_PRIO_MAX ? prio_names[prio] : "unknown";
}

int queue_prio_parse(const char *s)
{
	for (unsigned i = 0; i <= QUEUE_PRIO_MAX; i++)
		if (strcasecmp(s, prio_names[i]) == 0)
			return (int)i;
	return -1;
}

int queue_tag_check(const char *s, const char **why)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n == QUEUE_TAG_MAX ||
		    !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			break;
	}
	if (n == 0 || n > QUEUE_TAG_MAX || s[n] != '\0') {
		*why = "1 to 64 characters of A-Z a-z 0-9 . _ -";
		return -EINVAL;
	}
	return 0;
}

const char *queue_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

char *queue_id_fmt(uint64_t qid, char *buf)
{
	static const char hex[] = "0123456789ABCDEF";
	int n = 12;

	/* "%012" PRIX64, without printf: it names every delivery log line. */
	while (n < 16 && (qid >> (4 * n)) != 0)
		n++;
	for (int i = n - 1; i >= 0; i--, qid >>= 4)
		buf[i] = hex[qid & 15];
	buf[n] = '\0';
	return buf;
}

int queue_id_parse(const char *s, uint64_t *qid)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 16)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -EINVAL;
		v = v << 4 | d;
	}
	*qid = v;
	return 0;
}

/* Owning-envelope helpers. */

/* Whether @p p is in the envelope's block (queue_env_dup): not freed alone. */
static bool in_pack(const struct queue_env *env, const void *p)
{
	const char *c = p;

	return env->pack != NULL && c >= env->pack && c < env->pack + env->pack_len;
}

static void env_free_str(const struct queue_env *env, const char *s)
{
	if (s != NULL && !in_pack(env, s))
		free((char *)s);
}

static int env_strdup(const struct queue_env *env, const char **dst, const char *src)
{
	char *s = NULL;

	if (src != NULL && (s = strdup(src)) == NULL)
		return -ENOMEM;
	env_free_str(env, *dst);
	*dst = s;
	return 0;
}

int queue_env_set_sender(struct queue_env *env, const char *sender)
{
	env->owned = true;
	return env_strdup(env, &env->sender, sender ? sender : "");
}

int queue_env_set_envid(struct queue_env *env, const char *envid)
{
	env->owned = true;
	return env_strdup(env, &env->envid, envid);
}

static int env_set_tag(struct queue_env *env, const char **dst, const char *tag)
{
	const char *why;

	if (tag != NULL && queue_tag_check(tag, &why) < 0)
		return -EINVAL;
	env->owned = true;
	return env_strdup(env, dst, tag);
}

int queue_env_set_pool(struct queue_env *env, const char *pool)
{
	return env_set_tag(env, &env->pool, pool);
}

int queue_env_set_tenant(struct queue_env *env, const char *tenant)
{
	return env_set_tag(env, &env->tenant, tenant);
}

int queue_env_add_rcpt(struct queue_env *env, const char *addr, const char *orcpt, uint8_t notify)
{
	struct queue_rcpt *r;

	env->owned = true;
	if (env->nrcpt >= MAX_RCPT)
		return -E2BIG;
	if (env->nrcpt == env->cap) {
		uint32_t cap = env->cap ? env->cap * 2 : 4;
		bool packed = in_pack(env, env->rcpt);
		struct queue_rcpt *v = realloc(packed ? NULL : env->rcpt, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		if (packed)
			memcpy(v, env->rcpt, env->nrcpt * sizeof(*v));
		env->rcpt = v;
		env->cap = cap;
	}
	r = &env->rcpt[env->nrcpt];
	memset(r, 0, sizeof(*r));
	r->notify = notify;
	if (env_strdup(env, &r->addr, addr) < 0)
		return -ENOMEM;
	if (env_strdup(env, &r->orcpt, orcpt) < 0) {
		free((char *)r->addr);
		return -ENOMEM;
	}
	env->nrcpt++;
	return 0;
}

int queue_env_set_reply(struct queue_env *env, uint32_t i, const char *reply)
{
	return env_strdup(env, &env->rcpt[i].reply, reply);
}

void queue_env_free(struct queue_env *env)
{
	if (env->owned) {
		env_free_str(env, env->sender);
		env_free_str(env, env->envid);
		env_free_str(env, env->pool);
		env_free_str(env, env->tenant);
		for (uint32_t i = 0; i < env->nrcpt; i++) {
			env_free_str(env, env->rcpt[i].addr);
			env_free_str(env, env->rcpt[i].orcpt);
			env_free_str(env, env->rcpt[i].reply);
		}
	}
	if (!in_pack(env, env->rcpt))
		free(env->rcpt);
	free(env->pack);
	memset(env, 0, sizeof(*env));
}

void queue_env_release(struct queue_env *env)
{
	queue_env_free(env);
}

int queue_env_dup(struct queue_env *dst, const struct queue_env *src)
{
	return queue_env_dup_some(dst, src, NULL, src->nrcpt);
}

/* A copy of @p s at *p in the block (NULL stays NULL). */
static const char *pack_str(char **p, const char *s)
{
	size_t n;
	char *d = *p;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*p = d + n;
	return d;
}

static size_t str_len0(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/*
 * The recipients and every string in one block: the scheduler copies
 * each message it loads, and an allocation per string was most of it.
 */
int queue_env_dup_some(struct queue_env *dst, const struct queue_env *src, const uint32_t *idx,
		       uint32_t n)
{
	size_t len = n * sizeof(struct queue_rcpt);
	char *p;

	memset(dst, 0, sizeof(*dst));
	len += str_len0(src->sender ? src->sender : "") + str_len0(src->envid) +
	       str_len0(src->pool) + str_len0(src->tenant);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = idx ? idx[i] : i;
		const struct queue_rcpt *r;

		if (k >= src->nrcpt)
			return -ENOMEM;
		r = &src->rcpt[k];
		len += str_len0(r->addr) + str_len0(r->orcpt) + str_len0(r->reply);
	}
	if (len == 0 || (dst->pack = malloc(len)) == NULL)
		return -ENOMEM;
	dst->pack_len = len;
	dst->owned = true;
	dst->qid = src->qid;
	dst->flags = src->flags;
	dst->ret = src->ret;
	dst->arrival_ns = src->arrival_ns;
	dst->size = src->size;
	dst->next_attempt_ns = src->next_attempt_ns;
	dst->attempts = src->attempts;
	dst->priority = src->priority;
	dst->rcpt = n > 0 ? (struct queue_rcpt *)dst->pack : NULL;
	dst->nrcpt = dst->cap = n;
	p = dst->pack + n * sizeof(struct queue_rcpt);
	dst->sender = pack_str(&p, src->sender ? src->sender : "");
	dst->envid = pack_str(&p, src->envid);
	dst->pool = pack_str(&p, src->pool);
	dst->tenant = pack_str(&p, src->tenant);
	for (uint32_t i = 0; i < n; i++) {
		const struct queue_rcpt *r = &src->rcpt[idx ? idx[i] : i];

		dst->rcpt[i] = *r;
		dst->rcpt[i].addr = pack_str(&p, r->addr);
		dst->rcpt[i].orcpt = pack_str(&p, r->orcpt);
		dst->rcpt[i].reply = pack_str(&p, r->reply);
	}
	return 0;
}

bool queue_env_active(const struct queue_env *env)
{
	for (uint32_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == QUEUE_RCPT_PENDING ||
		    env->rcpt[i].state == QUEUE_RCPT_DEFERRED)
			return true;
	return false;
}

/* Encoding. */

static size_t str_size(const char *s)
{
	return 4 + (s ? strlen(s) + 1 : 0);
}

/* The oldest record version that holds @p env (see queue_env.h). */
static unsigned env_version(const struct queue_env *env)
{
	return env->priority == QUEUE_PRIO_NORMAL && env->pool == NULL && env->tenant == NULL
		   ? ENV_V1
		   : QUEUE_ENV_VERSION;
}

size_t queue_env_encoded_size(const struct queue_env *env)
{
	size_t n = ENV_HDR + str_size(env->sender ? env->sender : "") + str_size(env->envid);

	if (env_version(env) > ENV_V1)
		n += str_size(env->pool) + str_size(env->tenant);

	for (uint32_t i = 0; i < env->nrcpt; i++)
		n += RCPT_FIXED + str_size(env->rcpt[i].addr) + str_size(env->rcpt[i].orcpt) +
		     str_size(env->rcpt[i].reply);
	return n;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static unsigned char *put_str(unsigned char *p, const char *s)
{
	size_t n;

	if (s == NULL) {
		put32(p, STR_NULL);
		return p + 4;
	}
	n = strlen(s);
	put32(p, (uint32_t)n);
	memcpy(p + 4, s, n + 1);
	return p + 4 + n + 1;
}

/* The checksum covers everything but itself (bytes 12..15). */
static uint32_t env_crc(const unsigned char *b, size_t len)
{
	return queue_crc32c(queue_crc32c(0, b, 12), b + 16, len - 16);
}

long queue_env_encode(const struct queue_env *env, void *buf, size_t cap)
{
	size_t need = queue_env_encoded_size(env);
	unsigned version = env_version(env);
	unsigned char *b = buf, *p;
	const char *why;

	if (need > cap)
		return -ENOSPC;
	if (need > UINT32_MAX || env->nrcpt > MAX_RCPT || (env->flags & ~QUEUE_F_ALL) ||
	    env->ret > QUEUE_RET_HDRS || env->priority > QUEUE_PRIO_MAX ||
	    (env->pool && queue_tag_check(env->pool, &why) < 0) ||
	    (env->tenant && queue_tag_check(env->tenant, &why) < 0))
		return -EINVAL;
	memcpy(b, ENV_MAGIC, 4);
	b[4] = (unsigned char)version;
	b[5] = env->ret;
	b[6] = env->priority;
	b[7] = 0;
	put32(b + 8, (uint32_t)need);
	put64(b + 16, env->qid);
	put32(b + 24, env->flags);
	put32(b + 28, env->attempts);
	put64(b + 32, env->arrival_ns);
	put64(b + 40, env->size);
	put64(b + 48, env->next_attempt_ns);
	put32(b + 56, env->nrcpt);
	put32(b + 60, 0);
	p = put_str(b + ENV_HDR, env->sender ? env->sender : "");
	p = put_str(p, env->envid);
	for (uint32_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];

		if (r->addr == NULL || r->state > QUEUE_RCPT_BOUNCED)
			return -EINVAL;
		p[0] = r->state;
		p[1] = r->notify;
		p[2] = r->rflags;
		p[3] = 0;
		put32(p + 4, r->attempts);
		put64(p + 8, r->last_attempt_ns);
		p = put_str(p + RCPT_FIXED, r->addr);
		p = put_str(p, r->orcpt);
		p = put_str(p, r->reply);
	}
	if (version > ENV_V1) {
		p = put_str(p, env->pool);
		p = put_str(p, env->tenant);
	}
	put32(b + 12, env_crc(b, need));
	return (long)need;
}

/* Decoding: every length is checked against what is left before use. */

static int get_str(const unsigned char **pp, const unsigned char *end, const char **out)
{
	const unsigned char *p = *pp;
	uint32_t n;

	if (end - p < 4)
		return -EBADMSG;
	n = get32(p);
	p += 4;
	if (n == STR_NULL) {
		*out = NULL;
		*pp = p;
		return 0;
	}
	if ((size_t)(end - p) < (size_t)n + 1 || p[n] != '\0' || memchr(p, '\0', n) != NULL)
		return -EBADMSG;
	*out = (const char *)p;
	*pp = p + n + 1;
	return 0;
}

int queue_env_decode(const void *buf, size_t len, struct queue_env *env)
{
	const unsigned char *b = buf, *p, *end = b + len;
	const char *why;
	uint32_t nrcpt;

	memset(env, 0, sizeof(*env));
	if (len < ENV_HDR || memcmp(b, ENV_MAGIC, 4) != 0 || b[4] < ENV_V1 ||
	    b[4] > QUEUE_ENV_VERSION || get32(b + 8) != len || b[7] != 0 ||
	    (b[4] == ENV_V1 && b[6] != 0) || b[6] > QUEUE_PRIO_MAX ||
	    get32(b + 12) != env_crc(b, len))
		return -EBADMSG;
	env->ret = b[5];
	env->priority = b[6];
	env->qid = get64(b + 16);
	env->flags = get32(b + 24);
	env->attempts = get32(b + 28);
	env->arrival_ns = get64(b + 32);
	env->size = get64(b + 40);
	env->next_attempt_ns = get64(b + 48);
	nrcpt = get32(b + 56);
	if (env->ret > QUEUE_RET_HDRS || (env->flags & ~QUEUE_F_ALL) || nrcpt > MAX_RCPT ||
	    get32(b + 60) != 0 || (size_t)nrcpt * (RCPT_FIXED + 12) > len)
		goto bad;
	p = b + ENV_HDR;
	if (get_str(&p, end, &env->sender) < 0 || env->sender == NULL ||
	    get_str(&p, end, &env->envid) < 0)
		goto bad;
	if (nrcpt > 0) {
		/* Every field is set below; malloc, unlike calloc, has a
		 * per-thread cache for small blocks. */
		env->rcpt = malloc(nrcpt * sizeof(*env->rcpt));
		if (env->rcpt == NULL) {
			memset(env, 0, sizeof(*env));
			return -ENOMEM;
		}
		env->cap = nrcpt;
	}
	for (uint32_t i = 0; i < nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];

		if (end - p < RCPT_FIXED || p[0] > QUEUE_RCPT_BOUNCED || p[1] > 0xf || p[2] > 1 ||
		    p[3] != 0)
			goto bad;
		r->state = p[0];
		r->notify = p[1];
		r->rflags = p[2];
		r->attempts = get32(p + 4);
		r->last_attempt_ns = get64(p + 8);
		p += RCPT_FIXED;
		if (get_str(&p, end, &r->addr) < 0 || r->addr == NULL ||
		    get_str(&p, end, &r->orcpt) < 0 || get_str(&p, end, &r->reply) < 0)
			goto bad;
		env->nrcpt = i + 1;
	}
	if (b[4] > ENV_V1 &&
	    (get_str(&p, end, &env->pool) < 0 || get_str(&p, end, &env->tenant) < 0 ||
	     (env->pool && queue_tag_check(env->pool, &why) < 0) ||
	     (env->tenant && queue_tag_check(env->tenant, &why) < 0)))
		goto bad;
	if (p != end)
		goto bad;
	env->nrcpt = nrcpt;
	return 0;
bad:
	free(env->rcpt);
	memset(env, 0, sizeof(*env));
	return -EBADMSG;
}
