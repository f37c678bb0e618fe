/*
 * dns_conf.c - the [dns], [routes] and [relay] sections of dmta.conf.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/dmta_log.h"
#include "dns/dns_conf.h"

int dns_name_canon(const char *in, char out[DNS_NAME_MAX + 1])
{
	size_t n = strlen(in), lab = 0;

	if (n && in[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '.') {
			/* RFC 5321 §4.1.2: labels neither empty nor ending in '-' */
			if (lab == 0 || in[i - 1] == '-')
				return -EINVAL;
			lab = 0;
		} else if (c == '-' && lab == 0) {
			return -EINVAL;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '_') {
			lab++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c + 32);
			lab++;
		} else {
			return -EINVAL;
		}
		if (lab > 63)
			return -EINVAL;
		out[i] = c;
	}
	if (in[n - 1] == '-')
		return -EINVAL;
	out[n] = '\0';
	return 0;
}

int dns_name_canon_idna(const char *in, char out[DNS_NAME_MAX + 1])
{
	char *a = NULL;
	int rc;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if (*p >= 0x80)
			goto idna;
	}
	return dns_name_canon(in, out);
idna:
	/* RFC 6531 §3.2: an SMTPUTF8 domain is looked up by its A-labels. */
	if (idn2_to_ascii_8z(in, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
		return -EINVAL;
	rc = dns_name_canon(a, out);
	idn2_free(a);
	return rc;
}

static int port_parse(const char *s, size_t n, uint16_t *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* One "host[:port]" / "[v6]:port" / "v4" item of @n bytes. */
static int host_parse(const char *s, size_t n, struct dns_route_host *h, char *err, size_t errlen)
{
	char buf[DNS_NAME_MAX + 1];
	const char *colon;
	size_t hl = n;

	memset(h, 0, sizeof(*h));
	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);

		if (!rb)
			goto bad;
		hl = (size_t)(rb - s) - 1;
		if (hl >= sizeof(buf))
			goto bad;
		memcpy(buf, s + 1, hl);
		buf[hl] = '\0';
		if (inet_pton(AF_INET6, buf, &h->addr.v6) == 1)
			h->family = AF_INET6;
		else if (inet_pton(AF_INET, buf, &h->addr.v4) == 1)
			h->family = AF_INET;
		else
			goto bad;
		snprintf(h->name, sizeof(h->name), "%s", buf);
		s = rb + 1;
		n -= hl + 2;
		if (n == 0)
			return 0;
		if (s[0] != ':' || port_parse(s + 1, n - 1, &h->port) < 0)
			goto bad;
		return 0;
	}
	colon = memchr(s, ':', n);
	if (colon) {
		hl = (size_t)(colon - s);
		if (port_parse(colon + 1, n - hl - 1, &h->port) < 0)
			goto bad;
	}
	if (hl == 0 || hl >= sizeof(buf))
		goto bad;
	memcpy(buf, s, hl);
	buf[hl] = '\0';
	if (inet_pton(AF_INET, buf, &h->addr.v4) == 1) {
		h->family = AF_INET;
		snprintf(h->name, sizeof(h->name), "%s", buf);
		return 0;
	}
	if (dns_name_canon(buf, h->name) < 0)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "bad host \"%.*s\" (want name[:port], a.b.c.d[:port] or [v6]:port)",
		 (int)(n > 80 ? 80 : n), s);
	return -EINVAL;
}

int dns_hostlist_parse(const char *text, struct dns_route_host *hosts, unsigned max, char *err,
		       size_t errlen)
{
	unsigned k = 0;
	const char *p = text;

	for (;;) {
		const char *e;
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		e = strchr(p, ',');
		n = e ? (size_t)(e - p) : strlen(p);
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0) {
			snprintf(err, errlen, "empty host in list");
			return -EINVAL;
		}
		if (k == max) {
			snprintf(err, errlen, "more than %u hosts", max);
			return -EINVAL;
		}
		if (host_parse(p, n, &hosts[k], err, errlen) < 0)
			return -EINVAL;
		k++;
		if (!e)
			return (int)k;
		p = e + 1;
	}
}

/* The free-form keys, kept as written and parsed below. */
struct dns_conf_text {
	const char *servers, *local_names, *relay_host;
};

#define TEXT(m) DMTA_CONF_AT(struct dns_conf_text, m)
static const struct dmta_conf_key dns_text_keys[] = {
    {.name = "servers",
     .type = DMTA_CONF_STR,
     .example = "198.18.1.53",
     TEXT(servers),
     .help = "DNS servers, ADDR[,ADDR...] (default: /etc/resolv.conf)"},
    {.name = "local_names",
     .type = DMTA_CONF_STR,
     .example = "mail.example.org",
     TEXT(local_names),
     .help = "names of this host, so that it never delivers to itself (RFC 5321 5.1)"},
};

const struct dmta_conf_section dns_text_conf_section = {
    .name = "dns",
    .keys = dns_text_keys,
    .nkeys = DMTA_CONF_NKEYS(dns_text_keys),
};

#define DNS(m) DMTA_CONF_AT(struct dns_config, m)
static const struct dmta_conf_key dns_keys[] = {
    {.name = "timeout",
     .type = DMTA_CONF_DURATION,
     .def = "5s",
     .min = 10,
     .max = DMTA_CONF_MIN(10),
     DNS(timeout_ms)},
    {.name = "tries", .type = DMTA_CONF_U64, .def = "2", .min = 1, .max = 10, DNS(tries)},
    {.name = "ttl_min",
     .type = DMTA_CONF_DURATION,
     .def = "30s",
     .max = DMTA_CONF_DAY(7),
     .unit = 1000,
     DNS(ttl_min)},
    {.name = "ttl_max",
     .type = DMTA_CONF_DURATION,
     .def = "1d",
     .min = DMTA_CONF_SEC(1),
     .max = DMTA_CONF_DAY(7),
     .unit = 1000,
     DNS(ttl_max)},
    {.name = "negative_ttl_max",
     .type = DMTA_CONF_DURATION,
     .def = "3h",
     .max = DMTA_CONF_DAY(1),
     .unit = 1000,
     DNS(neg_ttl_max)},
    {.name = "tempfail_ttl",
     .type = DMTA_CONF_DURATION,
     .def = "5s",
     .max = DMTA_CONF_HOUR(1),
     .unit = 1000,
     DNS(tempfail_ttl)},
    {.name = "cache_size",
     .type = DMTA_CONF_U64,
     .def = "100000",
     .min = 1,
     .max = 100000000,
     DNS(cache_size)},
    {.name = "max_in_flight",
     .type = DMTA_CONF_U64,
     .def = "256",
     .min = 1,
     .max = 65536,
     DNS(max_in_flight)},
    {.name = "max_mx",
     .type = DMTA_CONF_U64,
     .def = "10",
     .min = 1,
     .max = DNS_HOSTS_MAX,
     DNS(max_mx)},
    {.name = "max_addrs", .type = DMTA_CONF_U64, .def = "8", .min = 1, .max = 256, DNS(max_addrs)},
    {.name = "ipv6", .type = DMTA_CONF_BOOL, .def = "yes", DNS(ipv6)},
};

const struct dmta_conf_section dns_conf_section = {
    .name = "dns",
    .keys = dns_keys,
    .nkeys = DMTA_CONF_NKEYS(dns_keys),
};

const struct dmta_conf_section dns_routes_conf_section = {
    .name = "routes",
    .help = "Static routes that override DNS: DOMAIN = HOST[:PORT][, HOST[:PORT]...]\n"
	    "(\".example.org\" covers subdomains).",
    .example = "internal.example = 10.1.2.3:2525, backup.internal.example",
};

static const struct dmta_conf_key relay_keys[] = {
    {.name = "host",
     .type = DMTA_CONF_STR,
     .example = "smtp.provider.example:587",
     TEXT(relay_host),
     .help = "A smarthost for everything, instead of MX lookups:"},
};

const struct dmta_conf_section dns_relay_conf_section = {
    .name = "relay",
    .keys = relay_keys,
    .nkeys = DMTA_CONF_NKEYS(relay_keys),
};

void dns_config_defaults(struct dns_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	(void)dmta_conf_read(NULL, &dns_conf_section, cfg); /* defaults cannot fail */
}

static int local_names_set(struct dns_config *cfg, const char *text)
{
	const char *p = text;

	for (;;) {
		char buf[DNS_NAME_MAX + 1], canon[DNS_NAME_MAX + 1], **nl;
		const char *e;
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		e = strchr(p, ',');
		n = e ? (size_t)(e - p) : strlen(p);
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0 || n >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (dns_name_canon_idna(buf, canon) < 0)
			return -EINVAL;
		nl = realloc(cfg->local, (cfg->n_local + 1) * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		cfg->local = nl;
		cfg->local[cfg->n_local] = strdup(canon);
		if (!cfg->local[cfg->n_local])
			return -ENOMEM;
		cfg->n_local++;
		if (!e)
			return 0;
		p = e + 1;
	}
}

bool dns_config_is_local(const struct dns_config *cfg, const char *name)
{
	for (unsigned i = 0; i < cfg->n_local; i++)
		if (strcmp(cfg->local[i], name) == 0)
			return true;
	return false;
}

static int route_set(struct dns_route *r, const char *domain, const char *value, char *err,
		     size_t errlen)
{
	struct dns_route_host hosts[DNS_ROUTE_HOSTS_MAX];
	char canon[DNS_NAME_MAX + 1];
	int n;

	r->subdomains = domain[0] == '.';
	if (dns_name_canon_idna(domain + r->subdomains, canon) < 0) {
		snprintf(err, errlen, "bad domain \"%s\"", domain);
		return -EINVAL;
	}
	n = dns_hostlist_parse(value, hosts, DNS_ROUTE_HOSTS_MAX, err, errlen);
	if (n < 0)
		return -EINVAL;
	r->domain = strdup(canon);
	r->hosts = malloc((size_t)n * sizeof(*hosts));
	if (!r->domain || !r->hosts) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(r->hosts, hosts, (size_t)n * sizeof(*hosts));
	r->n = (unsigned)n;
	return 0;
}

struct route_ctx {
	struct dns_config *cfg;
	const struct dmta_conf *conf;
	int rc;
};

static void route_one(const char *key, const char *value, void *arg)
{
	struct route_ctx *ctx = arg;
	struct dns_config *cfg = ctx->cfg;
	struct dns_route *nr;
	char err[200];

	nr = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*nr));
	if (!nr) {
		ctx->rc = -ENOMEM;
		return;
	}
	cfg->routes = nr;
	memset(&nr[cfg->n_routes], 0, sizeof(*nr));
	if (route_set(&nr[cfg->n_routes], key, value, err, sizeof(err)) < 0) {
		dmta_err("%s: [routes] %s: %s", dmta_conf_source(ctx->conf), key, err);
		free(nr[cfg->n_routes].domain);
		free(nr[cfg->n_routes].hosts);
		ctx->rc = -EINVAL;
		return;
	}
	cfg->n_routes++;
}

int dns_config_load(struct dns_config *cfg, const struct dmta_conf *conf)
{
	struct dns_conf_text text = {0};
	int rc = 0;
	const char *s;

	dns_config_defaults(cfg);
	rc |= dmta_conf_read(conf, &dns_text_conf_section, &text);
	rc |= dmta_conf_read(conf, &dns_relay_conf_section, &text);
	rc |= dmta_conf_read(conf, &dns_conf_section, cfg);
	s = text.servers;
	if (s && *s) {
		cfg->servers = strdup(s);
		for (char *p = cfg->servers; p && *p; p++)
			if (*p == ' ' || *p == '\t')
				memmove(p, p + 1, strlen(p)), p--;
	}
	/*
	 * Under test (tools/test sets DMTA_DNS_NO_SYSTEM), a configuration that
	 * forgot its lab server must fail, not ask the machine's resolver.
	 */
	if (cfg->servers == NULL && getenv("DMTA_DNS_NO_SYSTEM") != NULL) {
		dmta_err("%s: [dns] servers is not set, and DMTA_DNS_NO_SYSTEM forbids the "
			 "system's resolver",
			 dmta_conf_source(conf));
		rc = -1;
	}
	s = text.local_names;
	if (s && local_names_set(cfg, s) < 0) {
		dmta_err("%s: [dns] local_names: want host names separated by commas",
			 dmta_conf_source(conf));
		rc = -EINVAL;
	}
	if (cfg->ttl_min > cfg->ttl_max) {
		dmta_err("%s: [dns] ttl_min: above ttl_max", dmta_conf_source(conf));
		rc = -EINVAL;
	}

	struct route_ctx ctx = {.cfg = cfg, .conf = conf, .rc = 0};

	dmta_conf_foreach(conf, "routes", route_one, &ctx);
	if (ctx.rc)
		rc = ctx.rc;

	s = text.relay_host;
	if (s) {
		char err[200];
		struct dns_route_host hosts[DNS_ROUTE_HOSTS_MAX];
		int n = dns_hostlist_parse(s, hosts, DNS_ROUTE_HOSTS_MAX, err, sizeof(err));

		if (n < 0) {
			dmta_err("%s: [relay] host: %s", dmta_conf_source(conf), err);
			rc = -EINVAL;
		} else {
			cfg->relay.domain = strdup("*");
			cfg->relay.hosts = malloc((size_t)n * sizeof(*hosts));
			if (!cfg->relay.domain || !cfg->relay.hosts)
				return -ENOMEM;
			memcpy(cfg->relay.hosts, hosts, (size_t)n * sizeof(*hosts));
			cfg->relay.n = (unsigned)n;
		}
	}
	return rc ? -EINVAL : 0;
}

void dns_config_release(struct dns_config *cfg)
{
	for (unsigned i = 0; i < cfg->n_routes; i++) {
		free(cfg->routes[i].domain);
		free(cfg->routes[i].hosts);
	}
	free(cfg->routes);
	free(cfg->relay.domain);
	free(cfg->relay.hosts);
	free(cfg->servers);
	for (unsigned i = 0; i < cfg->n_local; i++)
		free(cfg->local[i]);
	free(cfg->local);
	memset(cfg, 0, sizeof(*cfg));
}

const struct dns_route *dns_config_route(const struct dns_config *cfg, const char *domain)
{
	const struct dns_route *best = NULL;
	size_t best_len = 0, dl = strlen(domain);

	for (unsigned i = 0; i < cfg->n_routes; i++) {
		const struct dns_route *r = &cfg->routes[i];
		size_t rl = strlen(r->domain);

		if (!r->subdomains && rl == dl && strcmp(r->domain, domain) == 0)
			return r; /* exact wins, as in Postfix's transport maps */
		if (r->subdomains && rl < dl && domain[dl - rl - 1] == '.' &&
		    strcmp(domain + dl - rl, r->domain) == 0 && rl > best_len) {
			best = r;
			best_len = rl;
		}
	}
	return best;
}
