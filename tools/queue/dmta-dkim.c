/*
 * dmta-dkim - DKIM keys for dmta: make them, show their DNS records, sign.
 *
 * SYNOPSIS
 *	dmta-dkim genkey --type rsa|ed25519 [--bits N] --selector S --domain D
 *		--out DIR
 *	dmta-dkim record KEYFILE --selector S --domain D
 *	dmta-dkim check [-c FILE]
 *	dmta-dkim sign [-c FILE] [--time UNIX] < message
 *
 * DESCRIPTION
 *	genkey makes a key pair (RSA, 2048 bits unless --bits says more; or
 *	Ed25519), writes the private key as DIR/S.key (PEM, mode 0600, never
 *	over an existing file) and the DNS record as DIR/S.txt, and prints
 *	that record: the TXT record S._domainkey.D to publish, in zone-file
 *	syntax, in strings of at most 255 octets. Then add to dmta.conf:
 *	[dkim D] keys = S:DIR/S.key. The same as opendkim-genkey.
 *
 *	record prints the TXT record of an existing key.
 *
 *	check loads the [dkim DOMAIN] sections of dmta.conf as the injectors
 *	do (keys read and checked) and prints each domain with its selectors
 *	and the records their DNS must hold.
 *
 *	sign reads a message, repairs it as dmta-sendmail does
 *	(queue_msg.h) and prints it with its DKIM-Signature fields: for
 *	trying a configuration, not needed to send mail.
 *
 * DIAGNOSTICS
 *	Exit 0; 64 usage; 65 a message that cannot be signed (sign); 73 a
 *	file cannot be written; 75 signing failed; 78 configuration or key
 *	errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/base/dmta_conf.h"
#include "core/base/dmta_log.h"
#include "queue/queue_dkim.h"
#include "queue/queue_msg.h"
#include "tools/queue/queue_tool.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: dmta-dkim genkey --type rsa|ed25519 [--bits N] --selector S --domain D "
		"--out DIR\n"
		"       dmta-dkim record KEYFILE --selector S --domain D\n"
		"       dmta-dkim check [-c FILE]\n"
		"       dmta-dkim sign [-c FILE] [--time UNIX] < message\n");
	exit(EX_USAGE_);
}

/* S._domainkey.D. IN TXT "..." "...", strings of at most 255 octets. */
static void print_record(FILE *out, const char *sel, const char *dom, const char *txt)
{
	size_t n = strlen(txt);

	fprintf(out, "%s._domainkey.%s. IN TXT (", sel, dom);
	for (size_t i = 0; i < n; i += 255)
		fprintf(out, " \"%.*s\"", (int)(n - i < 255 ? n - i : 255), txt + i);
	fprintf(out, " )\n");
}

static int record_of(EVP_PKEY *k, const char *sel, const char *dom, FILE *out)
{
	struct queue_buf txt = {0};

	if (queue_dkim_dns_record(k, &txt) < 0) {
		fprintf(stderr, "dmta-dkim: cannot encode the public key\n");
		return EX_SOFTWARE_;
	}
	print_record(out, sel, dom, txt.p);
	queue_buf_free(&txt);
	return EX_OK_;
}

static int genkey(const char *type, unsigned bits, const char *sel, const char *dom,
		  const char *dir)
{
	char path[4096], tpath[4096];
	EVP_PKEY *k;
	FILE *f;
	int fd, ex;

	if (strcmp(type, "rsa") == 0) {
		if (bits < QUEUE_DKIM_RSA_MIN_BITS || bits > 8192) {
			fprintf(stderr, "dmta-dkim: --bits %u: want 2048 to 8192\n", bits);
			return EX_USAGE_;
		}
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	} else if (strcmp(type, "ed25519") == 0) {
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	} else {
		fprintf(stderr, "dmta-dkim: --type %s: want rsa or ed25519\n", type);
		return EX_USAGE_;
	}
	if (k == NULL) {
		fprintf(stderr, "dmta-dkim: key generation failed\n");
		return EX_SOFTWARE_;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.key", dir, sel) >= sizeof(path) ||
	    (size_t)snprintf(tpath, sizeof(tpath), "%s/%s.txt", dir, sel) >= sizeof(tpath)) {
		fprintf(stderr, "dmta-dkim: --out path too long\n");
		EVP_PKEY_free(k);
		return EX_USAGE_;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "dmta-dkim: cannot create %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		EVP_PKEY_free(k);
		return EX_CANTCREAT_;
	}
	if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 ||
	    fsync(fileno(f)) != 0) {
		fprintf(stderr, "dmta-dkim: cannot write %s\n", path);
		fclose(f);
		unlink(path);
		EVP_PKEY_free(k);
		return EX_CANTCREAT_;
	}
	fclose(f);
	f = fopen(tpath, "w");
	if (f == NULL) {
		fprintf(stderr, "dmta-dkim: cannot create %s: %s\n", tpath, strerror(errno));
		EVP_PKEY_free(k);
		return EX_CANTCREAT_;
	}
	ex = record_of(k, sel, dom, f);
	if (fclose(f) != 0 && ex == EX_OK_)
		ex = EX_CANTCREAT_;
	if (ex == EX_OK_)
		ex = record_of(k, sel, dom, stdout);
	EVP_PKEY_free(k);
	if (ex == EX_OK_)
		fprintf(stderr,
			"dmta-dkim: wrote %s; publish the record above, then add to dmta.conf:\n"
			"[dkim %s]\nkeys = %s:%s\n",
			path, dom, sel, path);
	return ex;
}

static struct dmta_conf *load_conf(const char *cli)
{
	char err[512];
	struct dmta_conf *conf = dmta_conf_load(dmta_conf_path(cli), err, sizeof(err));

	if (conf == NULL) {
		fprintf(stderr, "dmta-dkim: %s\n", err);
		exit(EX_CONFIG_);
	}
	return conf;
}

static struct queue_dkim *load_dkim(struct dmta_conf *conf)
{
	char err[1024];
	struct queue_dkim *d = queue_dkim_conf_load(conf, err, sizeof(err));

	if (d == NULL) {
		fprintf(stderr, "dmta-dkim: %s\n", err);
		exit(EX_CONFIG_);
	}
	return d;
}

static void check_one(const char *domain, const char *selector, EVP_PKEY *pkey, void *arg)
{
	int *ex = arg;

	printf("[dkim %s] %s %s:\n", domain, selector,
	       EVP_PKEY_is_a(pkey, "RSA") ? "rsa-sha256" : "ed25519-sha256");
	if (record_of(pkey, selector, domain, stdout) != EX_OK_)
		*ex = EX_SOFTWARE_;
}

/* Every key loaded as the injectors load them, and the records DNS must hold. */
static int check(const char *cli)
{
	struct dmta_conf *conf = load_conf(cli);
	struct queue_dkim *d = load_dkim(conf);
	size_t nkeys, n = queue_dkim_count(d, &nkeys);
	int ex = EX_OK_;

	printf("%s: %zu signing domain%s, %zu key%s, all readable and of a usable type\n",
	       dmta_conf_source(conf), n, n == 1 ? "" : "s", nkeys, nkeys == 1 ? "" : "s");
	queue_dkim_foreach_key(d, check_one, &ex);
	queue_dkim_free(d);
	dmta_conf_free(conf);
	return ex;
}

static int sign(const char *cli, time_t now)
{
	struct dmta_conf *conf = load_conf(cli);
	struct queue_dkim *d = load_dkim(conf);
	struct queue_buf in = {0}, out = {0};
	struct queue_msg m;
	const char *why;
	char buf[65536];
	unsigned flags;
	ssize_t r;
	int n;

	while ((r = read(0, buf, sizeof(buf))) > 0)
		if (queue_buf_add(&in, buf, (size_t)r) < 0)
			exit(EX_TEMPFAIL_);
	if (queue_msg_parse(&m, in.p ? in.p : "", in.len, true, &why) < 0) {
		fprintf(stderr, "dmta-dkim: %s\n", why ? why : "out of memory");
		return EX_DATAERR_;
	}
	if (queue_msg_render(&m, &out, &flags) < 0)
		return EX_TEMPFAIL_;
	n = queue_dkim_sign_msg(d, &out, now, &why);
	if (n < 0) {
		fprintf(stderr, "dmta-dkim: cannot sign: %s\n", why);
		return n == -EBADMSG ? EX_DATAERR_ : EX_TEMPFAIL_;
	}
	if (n == 0)
		fprintf(stderr,
			"dmta-dkim: no [dkim] section covers the From domain: not signed\n");
	fwrite(out.p, 1, out.len, stdout);
	queue_msg_free(&m);
	queue_buf_free(&in);
	queue_buf_free(&out);
	queue_dkim_free(d);
	dmta_conf_free(conf);
	return EX_OK_;
}

int main(int argc, char **argv)
{
	const char *type = NULL, *sel = NULL, *dom = NULL, *dir = NULL, *conf = NULL, *file = NULL;
	unsigned long bits = QUEUE_DKIM_RSA_MIN_BITS;
	time_t now = time(NULL);

	dmta_log_init("dmta-dkim", DMTA_LOG_ERR);
	if (argc < 2)
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-' && file == NULL) {
			file = a;
			continue;
		}
		if (v == NULL)
			usage();
		if (strcmp(a, "--type") == 0)
			type = v;
		else if (strcmp(a, "--bits") == 0)
			bits = strtoul(v, NULL, 10);
		else if (strcmp(a, "--selector") == 0)
			sel = v;
		else if (strcmp(a, "--domain") == 0)
			dom = v;
		else if (strcmp(a, "--out") == 0)
			dir = v;
		else if (strcmp(a, "-c") == 0)
			conf = v;
		else if (strcmp(a, "--time") == 0)
			now = (time_t)strtoll(v, NULL, 10);
		else
			usage();
		i++;
	}
	if (strcmp(argv[1], "genkey") == 0 && type && sel && dom && dir && !file)
		return genkey(type, (unsigned)bits, sel, dom, dir);
	if (strcmp(argv[1], "record") == 0 && file && sel && dom) {
		char err[1024];
		EVP_PKEY *k;
		int ex;

		if (queue_dkim_key_load(file, &k, err, sizeof(err)) < 0) {
			fprintf(stderr, "dmta-dkim: %s\n", err);
			return EX_CONFIG_;
		}
		ex = record_of(k, sel, dom, stdout);
		EVP_PKEY_free(k);
		return ex;
	}
	if (strcmp(argv[1], "check") == 0 && !file)
		return check(conf);
	if (strcmp(argv[1], "sign") == 0 && !file)
		return sign(conf, now);
	usage();
}
