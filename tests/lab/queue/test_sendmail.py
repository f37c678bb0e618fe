#!/usr/bin/python3
"""test_sendmail.py - dmta-sendmail against bad input and input it must repair.

Usage: test_sendmail.py DMTA_SENDMAIL DMTA_QUEUE

Every bad input must give its sendmail exit code, exactly one line on stderr,
and leave the spool exactly as it was. Every repairable input must be queued
in a form that is valid on the wire (CRLF only, lines <= 998 octets, no NUL).
Needs root for the read-only and full tmpfs cases (mounted and unmounted
here).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SENDMAIL, QUEUE = sys.argv[1], sys.argv[2]
failures = []
mounts = []
counts = {"bad": 0, "good": 0}


def run(args, data=b"", conf=None, env_extra=None):
    env = dict(os.environ)
    env.pop("DMTA_CONFIG", None)
    if env_extra:
        env.update(env_extra)
    cmd = [SENDMAIL] + (["-C", conf] if conf else []) + args
    p = subprocess.run(cmd, input=data, capture_output=True, env=env, timeout=30)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def snapshot(conf):
    """The spool as dmta-queue sees it, plus every message's bytes."""
    p = subprocess.run([QUEUE, "-c", conf, "--json", "list"], capture_output=True, timeout=30)
    if p.returncode != 0:
        return ("unreadable", p.returncode, p.stderr)
    out = [p.stdout]
    for qid in re.findall(rb'"id":"([0-9A-F]+)"', p.stdout):
        c = subprocess.run([QUEUE, "-c", conf, "cat", qid.decode()], capture_output=True)
        out.append(c.stdout)
    return tuple(out)


def write_conf(d, spool, extra=""):
    path = os.path.join(d, "dmta-%d.conf" % len(os.listdir(d)))
    with open(path, "w") as f:
        f.write("[spool]\npath = %s\nmessage_size_limit = 65536\n%s" % (spool, extra))
    return path


def seed(conf):
    rc, err = run(["seed@example.org"], b"Subject: seed\n\nseed\n", conf)
    assert rc == 0, "seeding failed: %d %s" % (rc, err)


def check_bad(name, args, data, want, conf, pattern):
    counts["bad"] += 1
    before = snapshot(conf)
    rc, err = run(args, data, conf)
    after = snapshot(conf)
    lines = err.splitlines()
    if rc != want:
        failures.append("%s: got exit %d, want %d (stderr %r)" % (name, rc, want, err))
    elif len(lines) != 1 or not lines[0].startswith("dmta-sendmail: "):
        failures.append("%s: got stderr %r, want one 'dmta-sendmail: ...' line" % (name, err))
    elif not re.search(pattern, lines[0], re.I):
        failures.append("%s: got message %r, want /%s/" % (name, lines[0], pattern))
    elif before != after:
        failures.append("%s: spool changed" % name)
    else:
        print("ok   bad %-34s exit %d  %s" % (name, rc, lines[0]))


def wire_valid(b):
    if b"\0" in b:
        return "NUL"
    if not b.endswith(b"\r\n"):
        return "no final CRLF"
    for i, line in enumerate(b.split(b"\r\n")[:-1]):
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF in line %d" % i
        if len(line) > 998:
            return "line %d is %d octets" % (i, len(line))
    return None


def check_good(name, args, data, conf, checks=()):
    counts["good"] += 1
    rc, err = run(["-v"] + args, data, conf)
    m = re.search(r"queued as ([0-9A-F]+)", err)
    if rc != 0 or not m:
        failures.append("%s: got exit %d (%r), want 0 and a queue id" % (name, rc, err))
        return None
    qid = m.group(1)
    msg = subprocess.run([QUEUE, "-c", conf, "cat", qid], capture_output=True).stdout
    show = subprocess.run([QUEUE, "-c", conf, "--json", "show", qid], capture_output=True).stdout
    why = wire_valid(msg)
    if why:
        failures.append("%s: stored message not valid on the wire: %s" % (name, why))
        return None
    for desc, fn in checks:
        if not fn(msg, show):
            failures.append("%s: %s failed; stored %r" % (name, desc, msg[:300]))
            return None
    print("ok   good %-33s %s" % (name, qid))
    return msg


def has_fields(msg, show):
    head = msg.split(b"\r\n\r\n", 1)[0]
    return all(re.search(rb"(^|\r\n)" + f + rb":", head, re.I) for f in (b"Date", b"Message-ID", b"From"))


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (tmpfs mounts)")
        return 77
    d = tempfile.mkdtemp(prefix="dmta-t-queue-")
    try:
        spool = os.path.join(d, "spool")
        conf = write_conf(d, spool)
        seed(conf)
        ok = b"Subject: t\n\nbody\n"
        long_local = "a" * 65 + "@example.org"
        long_label = "u@" + "b" * 64 + ".org"
        bad = [
            ("no recipients", [], ok, 64, r"no recipients"),
            ("unknown option", ["-Z", "a@b.org"], ok, 64, r"unknown option -Z"),
            ("unknown option cluster", ["-tZ"], ok, 64, r"unknown option -Z"),
            ("option after recipient", ["a@b.org", "-f"], ok, 67, r"option"),
            ("-f at end", ["-f"], ok, 64, r"requires an argument"),
            ("bad -N", ["-N", "sometimes", "a@b.org"], ok, 64, r"-N"),
            ("-N never with others", ["-N", "never,success", "a@b.org"], ok, 64, r"-N"),
            ("bad -R", ["-R", "body", "a@b.org"], ok, 64, r"-R"),
            ("-V with a space", ["-V", "a b", "a@b.org"], ok, 64, r"-V"),
            ("-V too long", ["-V", "x" * 101, "a@b.org"], ok, 64, r"-V"),
            ("-B unknown body", ["-B", "9BIT", "a@b.org"], ok, 64, r"-B"),
            ("-F header injection", ["-F", "Eve\nBcc: victim@x.org", "a@b.org"], ok, 64, r"full name"),
            ("-f header injection", ["-f", "a@b.org\nBcc: v@x.org", "a@b.org"], ok, 64, r"sender"),
            ("-f bad address", ["-f", "a b@c.org", "a@b.org"], ok, 64, r"sender"),
            ("rcpt CRLF injection", ["a@b.org\r\nBcc: v@x.org"], ok, 67, r"recipient"),
            ("rcpt LF injection", ["a@b.org\nData: x"], ok, 67, r"recipient"),
            ("rcpt no domain", ["user@"], ok, 67, r"recipient"),
            ("rcpt no local part", ["@example.org"], ok, 67, r"recipient"),
            ("rcpt double dot", ["a..b@x.org"], ok, 67, r"dot"),
            ("rcpt space", ["a b@x.org"], ok, 67, r"recipient"),
            ("rcpt label too long", [long_label], ok, 67, r"63"),
            ("rcpt local too long", [long_local], ok, 67, r"64"),
            ("rcpt bad UTF-8", [os.fsdecode(b"\xff@x.org")], ok, 67, r"UTF-8"),
            ("rcpt unbalanced quote", ['"abc@x.org'], ok, 67, r"unbalanced|quote"),
            ("rcpt unbalanced angle", ["<a@b.org"], ok, 67, r"unbalanced"),
            ("rcpt underscore domain", ["a@x_y.org"], ok, 67, r"domain"),
            ("rcpt bad literal", ["a@[1.2.3]"], ok, 67, r"literal"),
            ("NUL in body", ["a@b.org"], b"Subject: x\n\nab\0cd\n", 65, r"NUL"),
            ("NUL in header", ["a@b.org"], b"Subj\0ect: x\n\nbody\n", 65, r"NUL"),
            ("oversize message", ["a@b.org"], b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 1000, 65, r"too large"),
            ("-t without recipients", ["-t"], b"Subject: none\n\nbody\n", 64, r"no recipients"),
            ("-t bad To address", ["-t"], b"To: bad..addr@x.org\n\nbody\n", 67, r"To"),
            ("-t malformed To list", ["-t"], b"To: \"open <a@b.org>\n\nbody\n", 65, r"malformed"),
            ("-bd unsupported", ["-bd"], ok, 64, r"unsupported mode"),
            ("-b without mode", ["-b"], ok, 64, r"mode"),
            ("-o without letter", ["-o", "a@b.org"], ok, 64, r"-o"),
        ]
        for name, args, data, want, pat in bad:
            check_bad(name, args, data, want, conf, pat)

        # The spool cannot be created: parent missing, a file in the way.
        for name, path in (("spool parent missing", os.path.join(d, "no", "such", "spool")),
                           ("spool is a file", conf)):
            c2 = write_conf(d, path)
            rc, err = run(["a@b.org"], ok, c2)
            counts["bad"] += 1
            if rc != 73 or len(err.splitlines()) != 1:
                failures.append("%s: got exit %d %r, want 73 and one line" % (name, rc, err))
            else:
                print("ok   bad %-34s exit %d  %s" % (name, rc, err.strip()))

        # A user who may not write the spool (as sendmail run by a user
        # without the spool's group would be).
        if shutil.which("setpriv"):
            counts["bad"] += 1
            os.chmod(d, 0o755)
            os.chmod(conf, 0o644)
            before = snapshot(conf)
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                SENDMAIL, "-C", conf, "a@b.org"], input=ok, capture_output=True)
            err = p.stderr.decode()
            if p.returncode != 73 or len(err.splitlines()) != 1 or snapshot(conf) != before:
                failures.append("spool not writable by the user: got %d %r, want 73" % (p.returncode, err))
            else:
                print("ok   bad %-34s exit %d  %s" % ("spool not writable by the user", p.returncode, err.strip()))

        # Missing configuration file named with -C.
        rc, err = run(["a@b.org"], ok, os.path.join(d, "missing.conf"))
        counts["bad"] += 1
        if rc != 78 or len(err.splitlines()) != 1:
            failures.append("missing -C file: got %d %r, want 78" % (rc, err))
        else:
            print("ok   bad %-34s exit %d  %s" % ("missing -C file", rc, err.strip()))

        # Read-only file system, new spool and existing spool.
        ro = os.path.join(d, "ro")
        os.mkdir(ro)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", ro], check=True)
        mounts.append(ro)
        c_ro = write_conf(d, os.path.join(ro, "spool"))
        seed(c_ro)
        subprocess.run(["mount", "-o", "remount,ro", ro], check=True)
        check_bad("unwritable spool (ro fs)", ["a@b.org"], ok, 73, c_ro, r"not writable|read-only")
        c_ro2 = write_conf(d, os.path.join(ro, "newspool"))
        rc, err = run(["a@b.org"], ok, c_ro2)
        counts["bad"] += 1
        if rc != 73 or len(err.splitlines()) != 1 or os.path.exists(os.path.join(ro, "newspool")):
            failures.append("uncreatable spool: got %d %r, want 73" % (rc, err))
        else:
            print("ok   bad %-34s exit %d  %s" % ("uncreatable spool (ro fs)", rc, err.strip()))

        # Full disk: a small tmpfs, filled up after the spool exists.
        full = os.path.join(d, "full")
        os.mkdir(full)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", full], check=True)
        mounts.append(full)
        c_full = write_conf(d, os.path.join(full, "spool"), "")
        with open(c_full, "a") as f:
            f.write("message_size_limit = 1M\n")
        seed(c_full)
        fd = os.open(os.path.join(full, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        os.close(fd)
        big = b"Subject: big\n\n" + (b"y" * 900 + b"\n") * 600
        check_bad("full disk (tmpfs)", ["a@b.org"], big, 75, c_full, r"full|space")

        # Map full: the LMDB map is smaller than the message.
        c_map = write_conf(d, os.path.join(d, "mapspool"), "map_size = 256k\n")
        with open(c_map, "a") as f:
            f.write("message_size_limit = 1M\n")
        seed(c_map)
        check_bad("map full", ["a@b.org"], big, 75, c_map, r"full")

        # Inputs a sendmail must accept and repair.
        crlf = lambda m, s: b"\r\n" in m
        good = [
            ("long body line (not MIME)", ["a@b.org"], b"Subject: l\n\n" + b"w" * 3000 + b"\n",
             [("quoted-printable", lambda m, s: b"Content-Transfer-Encoding: quoted-printable" in m)]),
            ("long body line (MIME)", ["a@b.org"],
             b"MIME-Version: 1.0\nContent-Type: text/plain\n\n" + b"m" * 2500 + b"\n", []),
            ("long header line", ["a@b.org"], b"Subject:" + b" word" * 500 + b"\n\nb\n",
             [("folded", lambda m, s: m.count(b"\r\n word") >= 1)]),
            ("long unbroken header", ["a@b.org"], b"X-Token: " + b"t" * 2500 + b"\n\nb\n", []),
            ("bare LF", ["a@b.org"], b"Subject: lf\n\nline1\nline2\n",
             [("CRLF", lambda m, s: b"line1\r\nline2\r\n" in m)]),
            ("bare CR", ["a@b.org"], b"Subject: cr\r\rline1\rline2\r",
             [("CRLF", lambda m, s: b"line1\r\nline2\r\n" in m)]),
            ("mixed line ends", ["a@b.org"], b"Subject: mix\r\n\nA\rB\r\nC", [("CRLF", lambda m, s: b"A\r\nB\r\nC\r\n" in m)]),
            ("empty message", ["a@b.org"], b"", [("fields added", has_fields)]),
            ("missing Date/Message-ID/From", ["a@b.org"], b"Subject: s\n\nb\n", [("fields added", has_fields)]),
            ("body without header", ["a@b.org"], b"just a body line\n", [("fields added", has_fields)]),
            ("-t with Bcc", ["-ti"], b"To: A <a@b.org>\nBcc: hidden@c.org\nSubject: t\n\n.\nb\n",
             [("Bcc removed", lambda m, s: b"Bcc" not in m and b"hidden@c.org" in s),
              ("dot kept with -i", lambda m, s: b"\r\n.\r\n" in m)]),
            ("lone dot ends input", ["a@b.org"], b"Subject: d\n\nkeep\n.\ndrop\n",
             [("cut at dot", lambda m, s: b"keep" in m and b"drop" not in m)]),
            ("SMTPUTF8 recipient", ["\u00fcser@b\u00fccher.example"], b"Subject: u\n\nb\n",
             [("smtputf8 flag", lambda m, s: b'"smtputf8":true' in s)]),
            ("8-bit body", ["a@b.org"], "Subject: 8\n\nna\u00efve\n".encode(),
             [("8bitmime flag", lambda m, s: b'"8bitmime":true' in s)]),
            ("unqualified recipient", ["root"], b"Subject: q\n\nb\n",
             [("qualified", lambda m, s: re.search(rb'"address":"root@', s) is not None)]),
            ("DSN options", ["-N", "success,failure", "-R", "hdrs", "-V", "env-1", "-f", "<>", "a@b.org"],
             b"Subject: dsn\n\nb\n",
             [("dsn stored", lambda m, s: b'"envid":"env-1"' in s and b'"ret":"hdrs"' in s and b'"notify":3' in s and b'"sender":""' in s)]),
            ("legacy flags ignored", ["-oi", "-oem", "-odb", "-U", "-m", "-n", "-L", "lbl", "-h", "5", "-G", "a@b.org"],
             b"Subject: legacy\n\nb\n", []),
            ("mbox From_ line", ["a@b.org"], b"From someone Mon Jan  1 00:00:00 2024\nSubject: m\n\nb\n",
             [("From_ dropped", lambda m, s: not m.startswith(b"From "))]),
        ]
        for name, args, data, checks in good:
            check_good(name, args, data, conf, checks)

        # -bp lists the queue; -q without a daemon is "mail system down".
        rc, err = run(["-bp"], b"", conf)
        if rc != 0:
            failures.append("-bp: got %d %r" % (rc, err))
        rc, err = run(["-q"], b"", conf)
        if rc != 69 or len(err.splitlines()) != 1:
            failures.append("-q without daemon: got %d %r, want 69" % (rc, err))
        p = subprocess.run([QUEUE, "-c", conf, "check"], capture_output=True)
        if p.returncode != 0:
            failures.append("spool check after the run: %r" % p.stdout)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", m])
        shutil.rmtree(d, ignore_errors=True)
    print("%d bad inputs, %d inputs to repair, %d failures" % (counts["bad"], counts["good"], len(failures)))
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
