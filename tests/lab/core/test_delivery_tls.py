"""Lab: dmtad delivers over TLS, with the backend named by argv[1]: dpdk
(dmta's userspace TCP on the lab's DPDK port) or kernel (kernel sockets).

The test brings its own receivers up inside the lab namespace, each on an
address of its own, with a test CA made here by the openssl CLI, and its
own DNS server for their names (so the lab's zone stays as it is):
  198.18.1.41  Postfix offering STARTTLS, delivering into a Maildir
               (MX of tls.test)
  198.18.1.42  aiosmtpd: STARTTLS and AUTH required on 587, implicit TLS
               and AUTH on 465, both optional on 25 (MX of timing.test)
  198.18.1.43  aiosmtpd offering STARTTLS with TLS 1.1 at most, which dmta
               refuses (MX of oldtls.test)
  198.18.1.44  named: the zone "test" with those names (relay.test and
               misnamed.test are both 198.18.1.42; the certificate names
               mx.tls.test and relay.test only)

and runs dmtad once per policy, each run with its own spool:
  direct      [smtp] tls = opportunistic: every message to tls.test goes
              over STARTTLS; the delivery log names TLS version and cipher
              for each, Postfix logged the same, and the Maildir holds each
              message once, byte-identical; sessions carry several messages
              and, idle for idle_timeout, end with QUIT.
  timing-tls  timing.test, one message per connection (a handshake each)
              to aiosmtpd on 25 over opportunistic STARTTLS,
  timing-plain  and the same with [smtp] tls = none: what the handshakes
              cost (printed, not asserted); the log shows TLS or none.
  relay587    [relay] relay.test:587, STARTTLS required and verified, AUTH
  relay465    [relay] relay.test:465, implicit TLS, verified, AUTH
              (each: delivered, received byte-identical, the server saw TLS
              with the same version and cipher, and AUTH; dmtad stops with
              the sessions idle, and each says QUIT first)
  badpass     relay.test:587 with a wrong password: deferred (535), not bounced
  misnamed    misnamed.test:587 (certificate for relay.test): deferred with
              "hostname mismatch", nothing reaches the server
  oldtls      [smtp] tls = opportunistic to oldtls.test: the handshake fails,
              dmtad tries the same MX again in plaintext and delivers (the
              delivery log says no TLS; the server saw none)
The receivers log the client's address: over dpdk it is the data plane's
198.18.0.2, over kernel the management link's 198.19.0.2."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(__file__))
from labutil import BUILD, NS, TOP, check, dmtad_conf, fail, lab, stop_procs

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "kernel"
CLIENT_IP = {"dpdk": "198.18.0.2", "kernel": "198.19.0.2"}[BACKEND]
PF_IP, AIO_IP, OLD_IP, DNS_IP = "198.18.1.41", "198.18.1.42", "198.18.1.43", "198.18.1.44"
N_TLS = 24     # to Postfix over opportunistic STARTTLS
N_TIMING = int(os.environ.get("DMTA_TLS_TIMING_COUNT", "100"))  # one per connection, with and without TLS
N_RELAY = 8    # per relay run
PASSWORD = "s3cr3t-Pa55"
TLS_RE = re.compile(r"^TLSv1\.[23] \S+$")

procs = []  # (name, Popen), stopped by PID in reverse order
addrs = []
tmp = tempfile.mkdtemp(prefix="dmta-tls-")
os.chmod(tmp, 0o755)  # Postfix reads the certificate and writes as nobody
pf_dir = os.path.join(tmp, "pf")


def on_term(signum, frame):
    raise SystemExit("killed by signal %d" % signum)


signal.signal(signal.SIGTERM, on_term)


def sh(*cmd, timeout=60, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    check(r.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r.stdout


def in_lab(*cmd):
    return ["ip", "netns", "exec", NS, *cmd]


def start(name, cmd, **kw):
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kw)
    procs.append((name, p))
    return p


def wait_port(addr, port, name):
    for _ in range(150):
        r = subprocess.run(in_lab("bash", "-c", "exec 3<>/dev/tcp/%s/%d" % (addr, port)),
                           capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    fail("%s did not come up on %s:%d: %s" % (name, addr, port,
                                               open(os.path.join(tmp, name + ".log")).read()))


def cleanup():
    if os.path.isdir(os.path.join(pf_dir, "etc")):
        subprocess.run(in_lab("postfix", "-c", os.path.join(pf_dir, "etc"), "stop"),
                       capture_output=True, timeout=30)
    stop_procs([p for _, p in procs])
    for a in addrs:
        subprocess.run(["ip", "-n", NS, "addr", "del", a + "/32", "dev", "lo"],
                       capture_output=True)
    subprocess.run(["rm", "-rf", tmp])


def make_certs():
    """A test CA, and one certificate for mx.tls.test and relay.test."""
    def ossl(*args):
        sh("openssl", *args, cwd=tmp)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=dmta-tls-test-ca")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=relay.test")
    with open(os.path.join(tmp, "srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:mx.tls.test,DNS:relay.test\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "srv.ext")


def start_servers():
    for a in (PF_IP, AIO_IP, OLD_IP, DNS_IP):
        sh("ip", "-n", NS, "addr", "replace", a + "/32", "dev", "lo")
        addrs.append(a)
    # DNS: a zone "test" of our own, so the lab's stays untouched.
    nd = os.path.join(tmp, "named")
    os.makedirs(nd)
    with open(os.path.join(nd, "named.conf"), "w") as f:
        f.write("""options {
	directory "%s";
	pid-file "%s/named.pid";
	listen-on port 53 { %s; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	allow-query { any; };
	notify no;
};
controls { };
zone "test" { type primary; file "%s/test.zone"; };
""" % (nd, nd, DNS_IP, nd))
    with open(os.path.join(nd, "test.zone"), "w") as f:
        f.write("""$TTL 300
@          SOA  ns.test. hostmaster.test. 1 3600 600 86400 60
@          NS   ns.test.
ns         A    %s
tls        MX   10 mx.tls.test.
mx.tls     A    %s
timing     MX   10 mx.timing.test.
mx.timing  A    %s
relay      A    %s
misnamed   A    %s
oldtls     MX   10 mx.oldtls.test.
mx.oldtls  A    %s
""" % (DNS_IP, PF_IP, AIO_IP, AIO_IP, AIO_IP, OLD_IP))
    start("named", in_lab("/usr/sbin/named", "-f", "-u", "root", "-c",
                          os.path.join(nd, "named.conf")))

    # Postfix with the certificate, delivering tls.test into a Maildir.
    sh(os.path.join(TOP, "tools/labfiles/postfix_setup.sh"), pf_dir, PF_IP,
       os.path.join(tmp, "srv.crt"), os.path.join(tmp, "srv.key"),
       env=dict(os.environ, PF_DOMAIN="tls.test"))
    start("postfix", in_lab("/usr/sbin/postfix", "-c", os.path.join(pf_dir, "etc"), "start-fg"))

    # aiosmtpd: 587 STARTTLS+AUTH required, 465 implicit TLS+AUTH, 25 optional.
    aio = os.path.join(TOP, "tests/lab/smtp/aiosmtpd_server.py")
    for port, extra in ((587, []), (465, ["--implicit"]), (25, ["--optional"])):
        out = os.path.join(tmp, "a%d" % port)
        os.makedirs(out)
        start("a%d" % port, in_lab("/usr/bin/python3", aio, "--host", AIO_IP, "--port", str(port),
                                   "--out", out, "--cert", os.path.join(tmp, "srv.crt"), "--key",
                                   os.path.join(tmp, "srv.key"), "--user", "alice", "--password",
                                   PASSWORD, *extra))
    out = os.path.join(tmp, "old25")
    os.makedirs(out)
    start("old25", in_lab("/usr/bin/python3", aio, "--host", OLD_IP, "--port", "25", "--out", out,
                          "--cert", os.path.join(tmp, "srv.crt"), "--key",
                          os.path.join(tmp, "srv.key"), "--optional", "--tls-max-1-1"))
    for _ in range(100):
        r = subprocess.run(in_lab("dig", "+time=1", "+tries=1", "+short", "@" + DNS_IP,
                                  "mx.tls.test", "A"), capture_output=True, text=True)
        if r.stdout.strip() == PF_IP:
            break
        time.sleep(0.1)
    else:
        fail("named did not come up: " + open(os.path.join(tmp, "named.log")).read())
    wait_port(PF_IP, 25, "postfix")
    for port in (587, 465, 25):
        wait_port(AIO_IP, port, "a%d" % port)
    wait_port(OLD_IP, 25, "old25")


def message(tag, i, rnd, size):
    """An RFC 5322 message with LF line ends: dots at line starts, a lone
    dot, 8-bit text, and filler up to about size bytes."""
    head = ("X-Test-Id: %s-%d\nFrom: <sender@dmta.test>\nTo: <rcpt%d@%s>\nSubject: tls %s %d\n"
            "Message-ID: <%s.%d@dmta.test>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            % (tag, i, i, tag, tag, i, tag, i))
    body = [".a line with a leading dot", "..two dots", ".", "gr\u00fc\u00dfe \u20ac"]
    n = len(head) + 60
    while n < size:
        line = "%d %s" % (n, "".join(rnd.choice("abcdefghij .") for _ in range(rnd.randint(0, 200))))
        body.append(line)
        n += len(line.encode()) + 1
    return head + "\n".join(body) + "\n"


class Run:
    """One dmtad run with its own spool and configuration."""

    def __init__(self, name, extra):
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "dmta.conf")
        self.spool = os.path.join(self.dir, "spool")
        # The lab's data plane, under a DPDK file prefix of our own: a
        # dmtad left over from elsewhere then cannot stop ours from starting
        # (the lab lock is what keeps two off dmta0 at once).
        dmtad_conf(self.conf, self.spool, BACKEND, """[smtp]
helo_name = dmta.test
connect_timeout = 3s
ca_file = %s
[queue]
dest_max_connections = 4
""" % os.path.join(tmp, "ca.crt") + extra, dns=DNS_IP, prefix="dmta-lab-tls")

    def inject(self, msgs):
        r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-c", self.conf],
                           input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, "%s: dmta-inject: exit %d: %s" % (self.name, r.returncode, r.stderr))

    def queued(self):
        q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", self.conf,
                            "--json", "stats"], capture_output=True, text=True, timeout=30)
        st = json.loads(q.stdout) if q.returncode == 0 and q.stdout.strip() else {}
        return st.get("messages", -1)

    def dlog(self):
        try:
            return [json.loads(l) for l in open(os.path.join(self.spool, "delivery.log"))]
        except FileNotFoundError:
            return []

    def run(self, done, limit=40, why=lambda: ""):
        """Start dmtad, wait (bounded) until done(self) holds, stop it."""
        d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", self.conf],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(("dmtad-" + self.name, d))
        lines = []
        while True:
            line = d.stdout.readline()
            lines.append(line)
            if not line or ": ready:" in line:
                break
        self.ready = time.time()
        ok = ": ready:" in line
        if ok:
            deadline = time.time() + limit
            while not done(self) and time.time() < deadline:
                time.sleep(0.2)
            ok = done(self)
        self.settled = time.time()
        d.terminate()
        out, _ = d.communicate(timeout=30)
        out = "".join(lines) + out
        if not ok:
            fail("%s: not done after %d s; dmtad said:\n%s\nlog:\n%s\n%s" % (
                self.name, limit, out, "\n".join(json.dumps(l) for l in self.dlog()[-5:]), why()))
        check(d.returncode == 0, "%s: dmtad exit %d after SIGTERM:\n%s" % (self.name, d.returncode, out))
        check("AddressSanitizer" not in out and "runtime error" not in out,
              "%s: sanitizer report:\n%s" % (self.name, out))
        return self.dlog()


def empty(r):
    return r.queued() == 0


def ts(rec):
    return datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def aio_received(port):
    """{X-Test-Id: (bytes, env dict)} of what aiosmtpd on port got."""
    out = os.path.join(tmp, "a%d" % port)
    got = {}
    for n in sorted(os.listdir(out)):
        if not n.endswith(".eml"):
            continue
        data = open(os.path.join(out, n), "rb").read()
        env = {}
        for l in open(os.path.join(out, n[:-4] + ".env")):
            k, _, v = l.rstrip("\n").partition(" ")
            env.setdefault(k, v)
        m = re.match(rb"X-Test-Id: (\S+)\r\n", data)
        check(m is not None, "a%d/%s: no X-Test-Id first" % (port, n))
        tid = m.group(1).decode()
        check(tid not in got, "a%d: %s received twice" % (port, tid))
        got[tid] = (data, env)
    return got


def check_delivered(name, recs, msgs, mx):
    """One delivered line per recipient, over TLS, to mx; returns {to: tls}."""
    want = {m["to"][0] for m in msgs}
    seen = {}
    for r in recs:
        check(r["outcome"] == "delivered", "%s: %s %s: %s" % (name, r["to"], r["outcome"], r["reply"]))
        check(r["to"] not in seen, "%s: %s logged twice" % (name, r["to"]))
        check(TLS_RE.match(r.get("tls", "")) is not None,
              "%s: %s: no TLS version and cipher in the log: %r" % (name, r["to"], r.get("tls")))
        check(r["mx"] == mx, "%s: mx %s, want %s" % (name, r["mx"], mx))
        seen[r["to"]] = r["tls"]
    check(set(seen) == want, "%s: %d of %d recipients logged" % (name, len(seen), len(want)))
    return seen


lab("up")
try:
    make_certs()
    start_servers()
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write(PASSWORD + "\n")
    with open(os.path.join(tmp, "pw-bad"), "w") as f:
        f.write("wrong\n")
    for pw in ("pw", "pw-bad"):  # dmtad refuses a password others can read
        os.chmod(os.path.join(tmp, pw), 0o600)
    rnd = random.Random(11)

    # ---- (a) direct mode: opportunistic STARTTLS to the MX -------------
    sizes = [rnd.randint(300, 6000) for _ in range(N_TLS - 3)] + [70000, 300000, 1200000]
    tls_msgs = [{"from": "sender@dmta.test", "to": ["rcpt%d@tls.test" % i],
                 "data": message("tls.test", i, rnd, sizes[i])} for i in range(N_TLS)]
    run = Run("direct", "[smtp]\ntls = opportunistic\nidle_timeout = 1s\n")
    run.inject(tls_msgs)

    def pf_sessions():
        """Postfix's end-of-session lines: [(client, {command: count})]."""
        try:
            mlog = open(os.path.join(pf_dir, "maillog")).read()
        except FileNotFoundError:
            return []
        return [(ip, {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}) for ip, rest in
                re.findall(r"postfix/smtpd\[\d+\]: disconnect from \S+\[([\d.]+)\] (.*)", mlog)]

    # Delivered, and then every session idle for 1 s said QUIT.
    pf = check_delivered("direct", run.run(lambda r: empty(r) and sum(
        s.get("mail", 0) for _, s in pf_sessions()) >= N_TLS, why=lambda: "Postfix's log:\n" +
        open(os.path.join(pf_dir, "maillog")).read()[-3000:]), tls_msgs, "mx.tls.test")
    # Only ours: the readiness probe shows up too.
    sessions = [(ip, s) for ip, s in pf_sessions() if s.get("commands")]
    check(sessions, "Postfix logged no session")
    check(all(ip == CLIENT_IP and s.get("starttls") == 1 and s.get("ehlo") == 2 and
              s.get("quit") == 1 for ip, s in sessions),
          "Postfix sessions not all STARTTLS, EHLO twice, QUIT: %r" % sessions)
    check(sum(s.get("mail", 0) for _, s in sessions) == N_TLS,
          "Postfix counted %d transactions, want %d" % (sum(s.get("mail", 0) for _, s in sessions),
                                                         N_TLS))
    # The Maildir: each message once, byte-identical after Postfix's headers.
    box = os.path.join(pf_dir, "mail/box/new")
    deadline = time.time() + 20
    while time.time() < deadline and len(os.listdir(box) if os.path.isdir(box) else []) < N_TLS:
        time.sleep(0.2)
    files = os.listdir(box) if os.path.isdir(box) else []
    check(len(files) == N_TLS, "Maildir holds %d messages, want %d" % (len(files), N_TLS))
    want = {m["data"].split("\n", 1)[0]: m["data"].encode() for m in tls_msgs}
    for n in files:
        data = open(os.path.join(box, n), "rb").read()
        k = data.find(b"\nX-Test-Id: ")
        check(k > 0, "Maildir %s: no X-Test-Id" % n)
        body = data[k + 1:]
        tid = body.split(b"\n", 1)[0].decode()
        check(tid in want, "Maildir %s: unexpected or duplicate %s" % (n, tid))
        check(body == want.pop(tid), "Maildir %s: %s differs from what was injected" % (n, tid))
    # Postfix saw TLS from our address, with the version and cipher logged.
    mlog = open(os.path.join(pf_dir, "maillog")).read()
    est = re.findall(r"TLS connection established from \S+\[([\d.]+)\]: (TLSv1\.[23]) with "
                     r"cipher (\S+)", mlog)
    check(est, "Postfix logged no TLS connection:\n" + mlog[-2000:])
    check(all(ip == CLIENT_IP for ip, _, _ in est), "Postfix saw clients %r" % {e[0] for e in est})
    logged = set(pf.values())
    check(logged <= {"%s %s" % (v, c) for _, v, c in est},
          "delivery log TLS %r not what Postfix logged %r" % (logged, est[:3]))
    print("ok (%s): direct: %d messages to tls.test over STARTTLS (%s), byte-identical in "
          "the Maildir; %d Postfix TLS sessions from %s, each ended by QUIT when idle" % (
              BACKEND, N_TLS, ", ".join(sorted(logged)), len(est), CLIENT_IP), flush=True)

    # ---- the handshake's cost: the same messages with and without TLS ---
    timing = {}
    for mode, policy in (("tls", "opportunistic"), ("plain", "none")):
        t_msgs = [{"from": "sender@dmta.test", "to": ["rcpt%d@timing.test" % i],
                   "data": message("timing-" + mode, i, rnd, 1000)} for i in range(N_TIMING)]
        run = Run("timing-" + mode,
                  "[smtp]\ntls = %s\n[dest timing.test]\nmax_messages_per_connection = 1\n" % policy)
        run.inject(t_msgs)
        recs = run.run(empty)
        check(len(recs) == N_TIMING and all(r["outcome"] == "delivered" for r in recs),
              "timing-%s: %d lines, %d delivered" % (
                  mode, len(recs), sum(r["outcome"] == "delivered" for r in recs)))
        if mode == "plain":
            check(all(not r.get("tls") for r in recs), "timing-plain: TLS logged with tls = none")
        else:
            check_delivered("timing-tls", recs, t_msgs, "mx.timing.test")
        got = {k: v for k, v in aio_received(25).items() if k.startswith("timing-" + mode)}
        check(len(got) == N_TIMING, "timing-%s: aiosmtpd got %d of %d" % (mode, len(got), N_TIMING))
        check(all(env["tls"] == str(mode == "tls") and env["peer"] == CLIENT_IP
                  for _, env in got.values()),
              "timing-%s: aiosmtpd saw the wrong TLS state or client: %r" % (
                  mode, next(iter(got.values()))[1]))
        conns = len({env["conn"] for _, env in got.values()})
        check(conns == N_TIMING, "timing-%s: %d connections for %d messages, want one each"
              % (mode, conns, N_TIMING))
        if mode == "tls":
            # Sessions are resumed but for the first few connections (in
            # flight before any ticket came back), each with a ticket of
            # its own (RFC 8446 C.4).
            resumed = sum(env["tls_resumed"] == "True" for _, env in got.values())
            full = sorted(int(env["conn"]) for _, env in got.values()
                          if env["tls_resumed"] != "True")
            check(resumed >= N_TIMING - 10, "timing-tls: only %d of %d TLS sessions resumed; "
                  "full handshakes on connections %s" % (resumed, N_TIMING, full))
        timing[mode] = max(ts(r) for r in recs) - run.ready

    # ---- (b) smarthost: required + verified TLS with AUTH ---------------
    for name, port in (("relay587", 587), ("relay465", 465)):
        msgs = [{"from": "sender@dmta.test", "to": ["rcpt%d@%s.example" % (i, name)],
                 "data": message(name, i, rnd, [500, 40000, 250000][i % 3])} for i in range(N_RELAY)]
        run = Run(name, "[relay]\nhost = relay.test:%d\n%suser = alice\npassword_file = %s\n"
                  % (port, "tls = required\nverify = yes\n" if port == 587 else "",
                     os.path.join(tmp, "pw")))
        run.inject(msgs)
        logged = check_delivered(name, run.run(empty), msgs, "relay.test")
        got = aio_received(port)
        check(len(got) == N_RELAY, "%s: aiosmtpd got %d of %d" % (name, len(got), N_RELAY))
        for m in msgs:
            tid = m["data"].split("\n", 1)[0].split(": ")[1]
            data, env = got[tid]
            check(data == m["data"].replace("\n", "\r\n").encode(),
                  "%s: %s received differs from what was injected" % (name, tid))
            check(env["tls"] == "True" and env["auth"] == "True" and env["peer"] == CLIENT_IP,
                  "%s: %s: tls %s auth %s peer %s" % (name, tid, env["tls"], env["auth"], env["peer"]))
            want = "%s %s" % (env["tls_version"], env["tls_cipher"])
            check(logged[m["to"][0]] == want, "%s: log says %s, server saw %s" % (
                name, logged[m["to"][0]], want))
        # dmtad stopped with these sessions idle: each said QUIT first.
        conns = {got[m["data"].split("\n", 1)[0].split(": ")[1]][1]["conn"] for m in msgs}
        out = os.path.join(tmp, "a%d" % port)
        rude = sorted(c for c in conns if not os.path.exists(os.path.join(out, "quit." + c)))
        check(not rude, "%s: connections %s ended without QUIT when dmtad stopped" % (name, rude))
        print("ok (%s): %s: %d messages over %s, verified, AUTH, byte-identical at the server; "
              "%d sessions said QUIT at dmtad's stop" % (
                  BACKEND, name, N_RELAY, ", ".join(sorted(set(logged.values()))), len(conns)),
              flush=True)

    # ---- (b) failures defer, with a clear reply -------------------------
    # The status is the reply's, in class 4 since it defers (535 5.7.8 ->
    # 4.7.8, as Postfix reports it).
    for name, host, pw, why, status in (
            ("badpass", "relay.test", "pw-bad", "535", "4.7.8"),
            ("misnamed", "misnamed.test", "pw", "hostname mismatch", "4.7.0")):
        before = len(aio_received(587))
        msgs = [{"from": "sender@dmta.test", "to": ["rcpt@%s.example" % name],
                 "data": message(name, 0, rnd, 500)}]
        run = Run(name, "[relay]\nhost = %s:587\nuser = alice\npassword_file = %s\n"
                  % (host, os.path.join(tmp, pw)))
        run.inject(msgs)
        recs = run.run(lambda r: len(r.dlog()) >= 1, limit=20)
        check(len(recs) == 1 and recs[0]["outcome"] == "deferred",
              "%s: want one deferral, got %r" % (name, recs))
        check(why in recs[0]["reply"], "%s: reply %r does not say %r" % (name, recs[0]["reply"], why))
        check(recs[0].get("status") == status, "%s: status %r, want %s"
              % (name, recs[0].get("status"), status))
        check(run.queued() == 1, "%s: the message left the queue" % name)
        check(len(aio_received(587)) == before, "%s: the server got a message" % name)
        print("ok (%s): %s: deferred: %s" % (BACKEND, name, recs[0]["reply"]), flush=True)

    # ---- opportunistic TLS that fails falls back to plaintext ------------
    msgs = [{"from": "sender@dmta.test", "to": ["rcpt%d@oldtls.test" % i],
             "data": message("oldtls", i, rnd, 800)} for i in range(3)]
    run = Run("oldtls", "[smtp]\ntls = opportunistic\n")
    run.inject(msgs)
    recs = run.run(lambda r: sum(1 for x in r.dlog() if x["outcome"] == "delivered") >= 3,
                   limit=30)
    check(sorted(x["outcome"] for x in recs) == ["delivered"] * 3,
          "oldtls: want 3 deliveries, got %r" % recs)
    check(all(x.get("tls", "") == "" for x in recs), "oldtls: the log claims TLS: %r" % recs)
    old = {}
    for n in sorted(os.listdir(os.path.join(tmp, "old25"))):
        if n.endswith(".env"):
            old[n] = open(os.path.join(tmp, "old25", n)).read()
    check(len(old) == 3 and all("tls False" in v for v in old.values()),
          "oldtls: the server's view: %r" % old)
    print("ok (%s): oldtls: TLS 1.1-only MX, handshake refused, delivered in plaintext"
          % BACKEND, flush=True)

    tt, pt = timing["tls"], timing["plain"]
    print("ok (%s): timing.test, %d messages, one per connection, 4 connections, to aiosmtpd: "
          "STARTTLS %.2f s (%.0f msg/s, %d TLS sessions resumed), plaintext %.2f s (%.0f msg/s), "
          "from dmtad ready to the last delivery"
          % (BACKEND, N_TIMING, tt, N_TIMING / tt, resumed, pt, N_TIMING / pt), flush=True)
finally:
    cleanup()
