#!/usr/bin/python3
"""test_dkim_verify.py - dmta's DKIM signatures against independent verifiers.

Usage: test_dkim_verify.py DMTA_SENDMAIL DMTA_INJECT DMTA_QUEUE DMTA_DKIM

Keys are made with dmta-dkim genkey, their TXT records served by a real DNS
server (BIND, the lab's own kind) in a private network namespace
(dmta-t-dkim-PID, 198.18.1.53 on its loopback). Messages of every awkward
kind (folded headers, 8-bit bodies, trailing blank lines, empty bodies,
lines too long for the wire, whitespace runs, a subdomain From) are queued
through dmta-sendmail and dmta-inject into a spool, read back with
dmta-queue cat, and every signature in them is verified alone by dkimpy
(python3-dkim; python3-nacl for Ed25519) and by OpenDKIM
(opendkim-testmsg). Both verifiers run inside the namespace and ask only
that server: dkimpy through a resolver given its address, OpenDKIM through
the namespace's own resolv.conf (/etc/netns/NS/resolv.conf, which ip netns
exec puts in place of /etc/resolv.conf). Copies with a changed body or a
changed signed header must fail with both.

Then what operators meet when something is wrong: a From of a domain with
no section goes unsigned; a From that cannot be signed correctly is refused
(dmta-sendmail 65, a refused dmta-inject line) and nothing of it is queued;
a key open to others or missing stops every injector with 78 and a line
naming the key.

Needs root; exits 77 (skip) without it or without the verifiers.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

DNS_IP = "198.18.1.53"

# Signing domains: one per canonicalisation, each with an RSA and an Ed25519
# key (a domain for every pair, so that each verifier sees each).
DOMAINS = {
    "dkim.test": "relaxed/relaxed",
    "simple.test": "simple/simple",
    "rs.test": "relaxed/simple",
    "sr.test": "simple/relaxed",
}


def cases(dom):
    """(name, message) pairs as a program would pipe them: LF line ends."""
    frm = "From: Sender <sender@%s>\n" % dom
    common = "To: rcpt@example.net\nDate: Mon, 23 Nov 2026 18:00:00 +0000\n"
    long_line = ("word " * 300).strip()
    return [
        ("plain", frm + common + "Subject: plain\nMessage-ID: <plain@%s>\n\nhello\n" % dom),
        ("folded", frm + "To: first@example.net,\n  second@example.net,\n\tthird@example.net\n"
         "Subject: a subject\n  folded   over\n\tthree lines  \n"
         "Date: Mon, 23 Nov 2026 18:00:00 +0000\n"
         "List-Unsubscribe: <mailto:unsub@%s>,\n <https://%s/unsub>\n"
         "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
         "Reply-To:    replies@%s   \nX-Not-Signed: 1\n\nbody\n" % (dom, dom, dom)),
        ("8bit", frm + common + "Subject: =?UTF-8?B?aMOpbGxv?=\nMIME-Version: 1.0\n"
         "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
         "h\u00e9llo w\u00f6rld \u20ac\n\u00fcml\u00e4ute  \t and tabs\t\n"),
        ("trailing-blank", frm + common + "Subject: trailing\n\nbody\n\n\n\n  \n\t\n\n"),
        ("empty-body", frm + common + "Subject: empty\n\n"),
        ("no-body", frm + common + "Subject: no body at all"),
        ("blank-only", frm + common + "Subject: blank only\n\n\n\n\n"),
        ("long-lines", frm + common + "Subject: long\n\n" + long_line + "\n" + "x" * 990 +
         "\nend\n"),
        ("long-mime", frm + common + "Subject: long mime\nMIME-Version: 1.0\n"
         "Content-Type: text/plain\n\n" + "y" * 2500 + "\n"),
        ("whitespace", frm + common + "Subject:   runs \t of   blanks  \n\n"
         "  lead\nmid  \t  dle\ntrail \t \n\n\t\nlast\n"),
        ("dots", frm + common + "Subject: dots\n\n.leading dot\n..two\n.\nend\n"),
        ("crlf", (frm + common + "Subject: crlf\n\nline one\nline two\n").replace("\n", "\r\n")),
        ("subdomain", "From: news@mail.%s\n" % dom + common + "Subject: sub\n\nfrom a subdomain\n"),
        # Fields that may repeat (RFC 5322 3.6): dkim.test signs Comments, so
        # both instances are in h= (OpenDKIM refuses to verify a message
        # with, say, two Subject fields, as RFC 5322 forbids them).
        ("repeated", frm + common + "Received: from a by b; Mon, 23 Nov 2026 17:59:00 +0000\n"
         "Received: from c by d; Mon, 23 Nov 2026 17:58:00 +0000\n"
         "Comments: first\nComments: second\nSubject: repeated\nReferences: <a@x> <b@x>\n"
         "In-Reply-To: <b@x>\nFeedback-ID: 1:2:3\n\nbody\n"),
    ]


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=kw.pop("timeout", 60), **kw)


# ------------------------------------------------------------------ outside


def outside():
    sendmail, inject, queue, dkimtool, dmtad = sys.argv[1:6]
    if os.geteuid() != 0:
        print("needs root (network namespace)")
        sys.exit(77)
    for need in ("/usr/sbin/named", "/usr/sbin/opendkim-testmsg"):
        if not os.path.exists(need):
            print("missing %s (tools/setup installs it)" % need)
            sys.exit(77)
    if sh(["/usr/bin/python3", "-c", "import dkim, nacl, dns.resolver"]).returncode != 0:
        print("missing python3-dkim / python3-nacl (tools/setup installs them)")
        sys.exit(77)
    ns = "dmta-t-dkim-%d" % os.getpid()
    t = tempfile.mkdtemp(prefix="dmta-t-dkim.")
    os.chmod(t, 0o755)
    named = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", DNS_IP + "/32", "dev", "lo"], check=True)
        os.makedirs("/etc/netns/" + ns)
        with open("/etc/netns/%s/resolv.conf" % ns, "w") as f:
            f.write("nameserver %s\n" % DNS_IP)

        # Keys and their records.
        keys = os.path.join(t, "keys")
        os.mkdir(keys, 0o700)
        records = []
        conf = "[spool]\npath = %s/spool\n" % t
        for i, (dom, canon) in enumerate(sorted(DOMAINS.items())):
            sels = []
            for kind in ("rsa", "ed25519"):
                sel = "%s%d" % (kind[:2], i)
                p = sh([dkimtool, "genkey", "--type", kind, "--selector", sel, "--domain", dom,
                        "--out", keys])
                if p.returncode != 0:
                    raise SystemExit("genkey %s %s: exit %d: %s" % (kind, dom, p.returncode,
                                                                     p.stderr.decode()))
                records.append(p.stdout.decode())
                mode = os.stat(os.path.join(keys, sel + ".key")).st_mode & 0o777
                if mode != 0o600:
                    raise SystemExit("genkey wrote mode %o, want 600" % mode)
                sels.append("%s:%s/%s.key" % (sel, keys, sel))
            conf += "[dkim %s]\nkeys = %s\ncanonicalization = %s\n" % (dom, ", ".join(sels),
                                                                      canon)
            if dom == "dkim.test":
                conf += ("expire = 7d\nheaders = From, To, Subject, Date, Message-ID, "
                         "Comments, Reply-To, List-Unsubscribe, List-Unsubscribe-Post, "
                         "MIME-Version, Content-Type, Content-Transfer-Encoding\n")
        with open(os.path.join(t, "dmta.conf"), "w") as f:
            f.write(conf)

        # The DNS server.
        os.mkdir(os.path.join(t, "named"))
        with open(os.path.join(t, "named", "named.conf"), "w") as f:
            f.write('options { directory "%s/named"; pid-file "%s/named/named.pid";\n'
                    ' listen-on port 53 { %s; }; listen-on-v6 { none; }; recursion no;\n'
                    ' dnssec-validation no; allow-query { any; }; notify no; };\n'
                    'controls { };\nzone "test" { type primary; file "%s/named/test.zone"; };\n'
                    % (t, t, DNS_IP, t))
        with open(os.path.join(t, "named", "test.zone"), "w") as f:
            f.write("$TTL 300\n@ SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"
                    "@ NS ns.test.\nns A %s\n" % DNS_IP)
            f.write("".join(records))
        named = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/named", "-f", "-u", "root",
                                  "-c", os.path.join(t, "named", "named.conf")],
                                 stdout=subprocess.DEVNULL, stderr=open(t + "/named.log", "w"))
        for _ in range(100):
            p = sh(["ip", "netns", "exec", ns, "dig", "+time=1", "+tries=1", "+short",
                    "@" + DNS_IP, "ed0._domainkey.dkim.test", "TXT"])
            if b"DKIM1" in p.stdout:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("DNS server did not come up: %s" % open(t + "/named.log").read())

        p = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", __file__, "--inside",
                            t, sendmail, inject, queue, dmtad], timeout=600)
        return p.returncode
    finally:
        if named is not None:
            named.terminate()
            try:
                named.wait(10)
            except subprocess.TimeoutExpired:
                named.kill()
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree("/etc/netns/" + ns, ignore_errors=True)
        shutil.rmtree(t, ignore_errors=True)


# ------------------------------------------------------------------- inside

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL - " + msg)


def inside():
    import dkim
    import dns.resolver

    t, sendmail, inject, queue, dmtad = sys.argv[2:7]
    conf = os.path.join(t, "dmta.conf")
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [DNS_IP]
    res.lifetime = 5

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        try:
            ans = res.resolve(n, "TXT")
        except Exception:
            return b""
        return b"".join(b"".join(r.strings) for r in ans)

    env = dict(os.environ)
    env.pop("DMTA_CONFIG", None)
    want = {}  # message name -> want signatures

    # Through dmta-sendmail, one message per case and domain.
    for dom in sorted(DOMAINS):
        for name, text in cases(dom):
            key = "sendmail/%s/%s" % (dom, name)
            p = subprocess.run([sendmail, "-C", conf, "-i", "-v", "rcpt@example.net"],
                               input=text.encode(), capture_output=True, env=env, timeout=30)
            m = re.search(rb"queued as ([0-9A-F]+)", p.stderr)
            if p.returncode != 0 or not m:
                fail("%s: exit %d, want 0: %s" % (key, p.returncode, p.stderr.decode()))
                continue
            want[m.group(1).decode()] = key
    # Through dmta-inject, the same cases for one domain in one run.
    lines = "".join(json.dumps({"from": "sender@dkim.test", "to": ["rcpt@example.net"],
                                "data": text}) + "\n" for _, text in cases("dkim.test"))
    p = subprocess.run([inject, "-c", conf, "--ids", "-q", "-j", "2"], input=lines.encode(),
                       capture_output=True, env=env, timeout=60)
    if p.returncode != 0:
        fail("dmta-inject: exit %d, want 0: %s" % (p.returncode, p.stderr.decode()))
    names = [n for n, _ in cases("dkim.test")]
    for row in p.stdout.decode().splitlines():
        line, qid = row.split()
        want[qid] = "inject/dkim.test/%s" % names[int(line) - 1]

    smtp_cases = []
    # Through dmtad's SMTP listener: signed in dmtad before its commit.
    # Mail for example.net is routed to a closed port, so it stays queued.
    dconf = os.path.join(t, "dmtad.conf")
    with open(dconf, "w") as f:
        f.write(open(conf).read() + "[delivery]\nbackend = kernel\n[dns]\nservers = %s\n"
                "[listen]\nsmtp = 127.0.0.1:2525\n[routes]\nexample.net = 127.0.0.1:9\n"
                "[control]\nstats_interval = 0\n" % DNS_IP)
    d = subprocess.Popen([dmtad, "-c", dconf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env)
    try:
        lines = []
        while len(lines) < 50:
            lines.append(d.stdout.readline())
            if not lines[-1] or ": ready:" in lines[-1]:
                break
        if ": ready:" not in lines[-1]:
            fail("dmtad with a listener did not start: %r" % lines)
        else:
            import smtplib
            # The cases SMTP can carry as they are (ASCII, lines under 1000).
            smtp_cases = [(n, x) for n, x in cases("dkim.test") if x.isascii() and
                          max(len(l) for l in x.split("\n")) < 990]
            for name, text in smtp_cases[:4]:
                key = "listen/dkim.test/%s" % name
                try:
                    with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as s:
                        s.ehlo("client.test")
                        s.mail("sender@dkim.test")
                        s.rcpt("rcpt@example.net")
                        code, resp = s.data(text.replace("\n", "\r\n").encode())
                except (OSError, smtplib.SMTPException) as e:
                    fail("%s: %s" % (key, e))
                    continue
                m = re.search(rb"queued as ([0-9A-F]+)", resp)
                if code != 250 or not m:
                    fail("%s: got %d %s, want 250 queued as ID" % (key, code, resp.decode()))
                    continue
                want[m.group(1).decode()] = key
    finally:
        d.terminate()
        try:
            d.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
            d.communicate()

    sigs = verified = tampered = 0
    reasons = set()
    tmp = os.path.join(t, "msg.eml")
    for qid, key in sorted(want.items()):
        p = subprocess.run([queue, "-c", conf, "cat", qid], capture_output=True, timeout=30)
        if p.returncode != 0:
            fail("%s: dmta-queue cat %s: exit %d" % (key, qid, p.returncode))
            continue
        msg = p.stdout
        # The fields, each with its folds, to take signatures out one by one.
        head, sep, body = msg.partition(b"\r\n\r\n")
        fields = re.findall(rb"[^\r\n]+(?:\r\n[ \t][^\r\n]*)*\r\n", head + b"\r\n")
        sigf = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
        rest = [f for f in fields if not f.lower().startswith(b"dkim-signature:")]
        if len(sigf) != 2:
            fail("%s: %d DKIM-Signature fields, want 2 (RSA and Ed25519)" % (key, len(sigf)))
            continue
        for sf in sigf:
            sigs += 1
            tags = re.sub(rb"\s+", b"", sf)
            alg = re.search(rb"a=([^;]+)", tags).group(1).decode()
            d = re.search(rb";d=([^;]+)", tags).group(1).decode()
            exp_d = key.split("/")[1]
            if d != exp_d:
                fail("%s %s: d=%s, want %s" % (key, alg, d, exp_d))
            if key.endswith("dkim.test/repeated") and b"comments:comments" not in tags:
                fail("%s %s: h= lacks both Comments fields: %s" % (key, alg, tags.decode()))
            for line in sf.split(b"\r\n"):
                if len(line) > 78:
                    fail("%s %s: a signature line of %d columns, want <= 78" % (key, alg,
                                                                               len(line)))
            one = sf + b"".join(rest) + sep[2:] + body if sep else sf + b"".join(rest)
            what = "%s %s" % (key, alg)
            ok_py, why_py = verify_py(dkim, one, dnsfunc)
            ok_od, why_od = verify_opendkim(one, tmp)
            if not ok_py:
                fail("%s: dkimpy says %s, want pass" % (what, why_py))
            if not ok_od:
                fail("%s: opendkim-testmsg says %s, want pass" % (what, why_od))
            if ok_py and ok_od:
                verified += 1
            # Tampered copies: body, then a signed header.
            for label, bad in tamper(one):
                tampered += 1
                ok_py, why_py = verify_py(dkim, bad, dnsfunc)
                ok_od, why_od = verify_opendkim(bad, tmp)
                if ok_py:
                    fail("%s, %s: dkimpy passes it, want a failure" % (what, label))
                if ok_od:
                    fail("%s, %s: opendkim-testmsg passes it, want a failure" % (what, label))
                elif "dkim_eom" not in why_od:
                    # It must fail verifying, not earlier on the message's form.
                    fail("%s, %s: opendkim-testmsg says %s, want a dkim_eom() failure" %
                         (what, label, why_od))
                reasons.add(why_od.split(": ", 1)[-1])
    check_refusals(t, sendmail, inject, queue, env)
    check_pool(t, inject, queue, env, dkim, dnsfunc)
    print("%d messages, %d signatures: %d verified by both dkimpy and OpenDKIM; "
          "%d tampered copies failed with both" % (len(want), sigs, verified, tampered))
    print("OpenDKIM's reasons for the tampered copies: %s" % "; ".join(sorted(reasons)))
    n_want = len(DOMAINS) * len(names) + len(names) + min(4, len(smtp_cases))
    if len(want) != n_want:
        fail("%d messages queued, want %d" % (len(want), n_want))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    return 0


def spool_count(queue, conf):
    p = subprocess.run([queue, "-c", conf, "--json", "list"], capture_output=True, timeout=30)
    return json.loads(p.stdout)["count"] if p.returncode == 0 else -1


def check_refusals(t, sendmail, inject, queue, env):
    conf = os.path.join(t, "dmta.conf")
    base = spool_count(queue, conf)

    def send(text, conf=conf):
        return subprocess.run([sendmail, "-C", conf, "-i", "-v", "rcpt@example.net"],
                              input=text.encode(), capture_output=True, env=env, timeout=30)

    # No section for the From domain: queued, unsigned.
    p = send("From: a@unsigned.example\nSubject: x\n\nbody\n")
    m = re.search(rb"queued as ([0-9A-F]+)", p.stderr)
    if p.returncode != 0 or not m:
        fail("unsigned domain: exit %d, want 0: %s" % (p.returncode, p.stderr.decode()))
    else:
        c = subprocess.run([queue, "-c", conf, "cat", m.group(1).decode()], capture_output=True)
        if b"DKIM-Signature" in c.stdout:
            fail("unsigned domain: the stored message has a DKIM-Signature, want none")
        base += 1
    # A From that cannot be signed correctly.
    for frm in ("a@dkim.test, b@dkim.test", "Alice", "<a@dkim.test"):
        p = send("From: %s\nSubject: x\n\nbody\n" % frm)
        err = p.stderr.decode()
        if p.returncode != 65 or "cannot DKIM-sign" not in err:
            fail("From: %s: exit %d (%s), want 65 and \"cannot DKIM-sign\"" % (frm, p.returncode,
                                                                           err.strip()))
    p = send("From: a@dkim.test\nFrom: b@dkim.test\nSubject: x\n\nbody\n")
    if p.returncode != 65:
        fail("two From fields: exit %d, want 65" % p.returncode)
    # dmta-inject: the bad line is refused, the good one queued.
    lines = (json.dumps({"from": "a@dkim.test", "to": ["r@example.net"],
                         "data": "Subject: no From\n\nbody\n"}) + "\n" +
             json.dumps({"from": "a@dkim.test", "to": ["r@example.net"],
                         "data": "From: a@dkim.test\nSubject: ok\n\nbody\n"}) + "\n")
    p = subprocess.run([inject, "-c", conf, "-q"], input=lines.encode(), capture_output=True,
                       env=env, timeout=60)
    err = p.stderr.decode()
    if p.returncode != 65 or "line 1: cannot DKIM-sign the message: no From: field" not in err:
        fail("inject without From: exit %d (%s), want 65 and line 1 refused" % (p.returncode,
                                                                               err.strip()))
    base += 1
    got = spool_count(queue, conf)
    if got != base:
        fail("spool holds %d messages after the refusals, want %d" % (got, base))
    # Keys: open to others, missing.
    key = os.path.join(t, "keys", "ed0.key")
    os.chmod(key, 0o644)
    for prog, args in ((sendmail, ["-C", conf, "r@example.net"]), (inject, ["-c", conf])):
        p = subprocess.run([prog] + args, input=b"From: a@dkim.test\n\nx\n", capture_output=True,
                           env=env, timeout=30)
        err = p.stderr.decode()
        if p.returncode != 78 or "mode 0644" not in err or key not in err:
            fail("%s with a key of mode 0644: exit %d (%s), want 78 naming the key and its mode"
                 % (os.path.basename(prog), p.returncode, err.strip()))
    os.chmod(key, 0o600)
    bad = os.path.join(t, "missing.conf")
    with open(bad, "w") as f:
        f.write("[spool]\npath = %s/spool\n[dkim x.test]\nkeys = s:%s/keys/none.key\n" % (t, t))
    p = send("From: a@x.test\n\nx\n", conf=bad)
    if p.returncode != 78 or "none.key" not in p.stderr.decode():
        fail("missing key: exit %d (%s), want 78 naming the key" % (p.returncode,
                                                                 p.stderr.decode().strip()))
    if spool_count(queue, conf) != base:
        fail("a refused injection changed the spool")


def check_pool(t, inject, queue, env, dkim, dnsfunc):
    """Many small batches from a file: the signers work on one batch while the
    next is read; every message is queued once, in order, signed."""
    conf = os.path.join(t, "dmta.conf")
    n = 300
    path = os.path.join(t, "pool.jsonl")
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"from": "s@dkim.test", "to": ["r@example.net"],
                                "data": "From: s@dkim.test\nSubject: pool %d\n\nmessage %d\n"
                                % (i, i)}) + "\n")
    with open(path, "rb") as f:
        p = subprocess.run([inject, "-c", conf, "--ids", "-q", "-b", "7", "-j", "3"], stdin=f,
                           capture_output=True, env=env, timeout=120)
    rows = [r.split() for r in p.stdout.decode().splitlines()]
    lines = [int(r[0]) for r in rows]
    if p.returncode != 0 or lines != list(range(1, n + 1)):
        fail("signer pool: exit %d, %d ids, want 0 and lines 1..%d in order: %s"
             % (p.returncode, len(lines), n, p.stderr.decode().strip()))
        return
    for line, qid in rows[::29]:
        c = subprocess.run([queue, "-c", conf, "cat", qid], capture_output=True, timeout=30)
        msg = c.stdout
        want = b"message %d\r\n" % (int(line) - 1)
        if not msg.endswith(want):
            fail("signer pool: line %s is queued as %s holding %r, want its own body"
                 % (line, qid, msg[-40:]))
        nsig = msg.count(b"DKIM-Signature:")
        ok = 0
        for i in range(nsig):
            ok += verify_py_idx(dkim, msg, dnsfunc, i)
        if nsig != 2 or ok != 2:
            fail("signer pool: line %s: %d of %d signatures verify, want 2 of 2"
                 % (line, ok, nsig))


def verify_py_idx(dkim, msg, dnsfunc, idx):
    try:
        return bool(dkim.DKIM(msg).verify(idx=idx, dnsfunc=dnsfunc))
    except Exception:
        return False


def tamper(msg):
    head, sep, body = msg.partition(b"\r\n\r\n")
    out = []
    out.append(("body changed", head + b"\r\n\r\n" + body + b"one more line\r\n"))
    if re.search(rb"\r\nSubject:", head):
        out.append(("Subject changed", re.sub(rb"\r\nSubject:", b"\r\nSubject: Re:", head, 1) +
                    sep + body))
    return out


def verify_py(dkim, msg, dnsfunc):
    try:
        d = dkim.DKIM(msg)
        return (d.verify(dnsfunc=dnsfunc), "fail")
    except Exception as e:  # dkimpy raises on malformed input
        return (False, "%s: %s" % (type(e).__name__, e))


def verify_opendkim(msg, tmp):
    with open(tmp, "wb") as f:
        f.write(msg)
    with open(tmp, "rb") as f:
        p = subprocess.run(["/usr/sbin/opendkim-testmsg"], stdin=f, capture_output=True,
                           timeout=30)
    why = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    return (p.returncode == 0 and why == "", "exit %d: %s" % (p.returncode, why or "-"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        sys.exit(inside())
    sys.exit(outside())
