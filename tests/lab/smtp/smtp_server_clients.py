#!/usr/bin/env python3
"""smtp_server_clients.py - Python clients against smtp_server_harness.

Usage: smtp_server_clients.py CASE HOST DIR

Each case sends its messages, then compares what the harness stored in DIR
(n.eml, numbered in arrival order) byte for byte with what it meant to send
(CRLF line ends, dots un-stuffed). Prints "ok CASE: ..." and exits 0, or
prints what differs and exits 1.

Cases:
  smtplib      200 messages on one connection (random bodies: dots at line
               starts, lone dots, 8-bit text, bare LF and CR line ends)
  utf8         SMTPUTF8 addresses and DSN parameters through smtplib
  tls-plain    STARTTLS, AUTH PLAIN, 20 messages
  tls-login    STARTTLS, AUTH LOGIN, 20 messages
  bdat         raw socket: pipelined BDAT chunks with binary bytes
  smuggle      raw socket: "\\n.\\n" and friends must not end the data
  inject       raw socket: a command pipelined after STARTTLS is refused

Usage: smtp_server_clients.py sent RAWFILE OUTFILE

  Reads what a client sent (a raw capture of its side of the connection)
  and writes the first DATA body as the client meant it: the lines after
  "DATA" up to the lone ".", each with its CRLF, leading dots un-stuffed.
"""
import os
import random
import smtplib
import socket
import ssl
import sys


def stored(d):
    return sorted(int(f[:-4]) for f in os.listdir(d) if f.endswith(".eml") and f[0].isdigit())


def canonical(b):
    """What a client means by a body: CRLF line ends, a final CRLF."""
    b = b.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if b and not b.endswith(b"\r\n"):
        b += b"\r\n"
    return b


def check(d, first, want, name):
    got = stored(d)
    new = [n for n in got if n > first]
    if len(new) != len(want):
        print(f"FAIL {name}: got {len(new)} new messages, want {len(want)}")
        return False
    for n, w in zip(new, want):
        with open(os.path.join(d, f"{n}.eml"), "rb") as f:
            g = f.read()
        if g != w:
            print(f"FAIL {name}: message {n}: got {g[:200]!r}... ({len(g)} bytes), "
                  f"want {w[:200]!r}... ({len(w)} bytes)")
            return False
    return True


def last(d):
    s = stored(d)
    return s[-1] if s else 0


def random_body(rng, i):
    """Even i: bytes with CRLF line ends and 8-bit text (smtplib sends bytes
    as they are); odd i: ASCII text with CRLF, LF and CR line ends mixed
    (smtplib turns a str's line ends into CRLF)."""
    mixed = i % 2 == 1
    lines = [f"Subject: message {i}".encode(), b"From: a@x.test", b""]
    for _ in range(rng.randint(1, 60)):
        kind = rng.random()
        if kind < 0.15:
            lines.append(b"." * rng.randint(1, 3) + b"dot line")
        elif kind < 0.2:
            lines.append(b".")
        elif kind < 0.3 and not mixed:
            lines.append("h\u00e9llo w\u00f6rld \u20ac".encode())
        elif kind < 0.35:
            lines.append(b"")
        else:
            lines.append(bytes(rng.choice(b"abcdefghij .,;:-") for _ in range(rng.randint(1, 200))))
    ends = [b"\r\n", b"\n", b"\r"] if mixed else [b"\r\n"]
    out = b""
    for ln in lines:
        out += ln + rng.choice(ends)
    return out.decode("ascii") if mixed else out


def case_smtplib(host, d, tls=None):
    rng = random.Random(1234 if tls is None else 99)
    first = last(d)
    want = []
    n = 200 if tls is None else 20
    with smtplib.SMTP(host, 25, timeout=20) as s:
        s.ehlo("py.lab.test")
        if tls:
            s.starttls(context=ssl._create_unverified_context())
            s.ehlo("py.lab.test")
            if tls == "plain":
                s.login("test", "test-pass")
            else:
                s.user, s.password = "test", "test-pass"
                s.auth("LOGIN", s.auth_login)
        for i in range(n):
            body = random_body(rng, i)
            refused = s.sendmail("a@x.test", ["b@lab.test", "deny@other.test"], body)
            if list(refused) != ["deny@other.test"] or refused["deny@other.test"][0] != 550:
                print(f"FAIL smtplib: refused got {refused}, want deny@other.test with 550")
                return False
            want.append(canonical(body.encode() if isinstance(body, str) else body))
    return check(d, first, want, "smtplib" if tls is None else "tls-" + tls)


def case_utf8(host, d):
    first = last(d)
    body = "Subject: \u00fcml\u00e4ut\r\n\r\nb\u00f6dy\r\n.\r\n..\r\n".encode()
    with smtplib.SMTP(host, 25, timeout=20) as s:
        s.ehlo("py.lab.test")
        if not s.has_extn("smtputf8") or not s.has_extn("dsn"):
            print("FAIL utf8: SMTPUTF8 or DSN not offered")
            return False
        s.sendmail("s\u00e9nder@x.test", ["r\u00e9cipient@lab.test"], body,
                   mail_options=["SMTPUTF8", "RET=HDRS", "ENVID=id+2B1"],
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    if not check(d, first, [canonical(body)], "utf8"):
        return False
    with open(os.path.join(d, f"{last(d)}.env"), encoding="utf-8") as f:
        env = f.read()
    want = "MAIL s\u00e9nder@x.test\nRCPT r\u00e9cipient@lab.test\n"
    if env != want:
        print(f"FAIL utf8: envelope got {env!r}, want {want!r}")
        return False
    return True


def talk(host, data, want_lines, timeout=10):
    """Send data in one write, read until want_lines reply lines are in."""
    s = socket.create_connection((host, 25), timeout=timeout)
    got = b""
    s.sendall(data)
    try:
        while got.count(b"\r\n") < want_lines:
            b = s.recv(65536)
            if not b:
                break
            got += b
    finally:
        s.close()
    return got.decode("utf-8", "replace")


def case_bdat(host, d):
    first = last(d)
    c1 = b"Subject: bdat\r\n\r\nbinary \x00\x01\xff bytes\n.\r\n.\r\nbare\rLF\n"
    c2 = b"\r\n.\r\nlast chunk\r\n"
    data = (b"EHLO py\r\nMAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@lab.test>\r\n"
            + b"BDAT %d\r\n" % len(c1) + c1 + b"BDAT %d LAST\r\n" % len(c2) + c2 + b"QUIT\r\n")
    # greeting + EHLO (10 lines) + MAIL + RCPT + 2 BDAT + QUIT
    r = talk(host, data, 16)
    if f"250 2.0.0 {len(c1)} octets received" not in r or "250 2.0.0 Ok: queued" not in r:
        print(f"FAIL bdat: replies {r!r}")
        return False
    return check(d, first, [c1 + c2], "bdat")


def case_smuggle(host, d, normalise):
    first = last(d)
    want = []
    for trick in [b"\n.\n", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n"]:
        body = (b"Subject: s\r\n\r\nhi" + trick + b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@lab.test>\r\n"
                b"DATA\r\nsmuggled\r\n")
        data = (b"EHLO py\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@lab.test>\r\nDATA\r\n" + body
                + b".\r\nQUIT\r\n")
        r = talk(host, data, 1 + 9 + 3 + 1 + 1 + 1)
        if "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354" not in r or r.count("250 2.1.0") != 1:
            print(f"FAIL smuggle {trick!r}: replies {r!r}")
            return False
        if normalise:
            if "250 2.0.0 Ok: queued" not in r:
                print(f"FAIL smuggle {trick!r}: replies {r!r}, want 250")
                return False
            # The dot after a bare line end is a stuffed dot when it starts a CRLF line.
            b = body.replace(b"\r\n.\n", b"\r\n\n")
            want.append(canonical(b))
        elif "554 5.6.0" not in r:
            print(f"FAIL smuggle {trick!r}: replies {r!r}, want 554 5.6.0")
            return False
    return check(d, first, want, "smuggle")


def case_inject(host, d):
    first = last(d)
    r = talk(host, b"EHLO py\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\n", 1 + 11 + 1)
    if "554 5.5.0" not in r or "220 2.0.0" in r:
        print(f"FAIL inject: replies {r!r}, want 554 5.5.0 and no 220")
        return False
    return check(d, first, [], "inject")


def sent_body(raw, out):
    with open(raw, "rb") as f:
        data = f.read()
    lines = data.split(b"\r\n")
    try:
        i = next(k for k, ln in enumerate(lines) if ln.upper() == b"DATA") + 1
        j = next(k for k in range(i, len(lines)) if lines[k] == b".")
    except StopIteration:
        print(f"FAIL sent: no DATA body in {raw}")
        return False
    body = b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in lines[i:j])
    with open(out, "wb") as f:
        f.write(body)
    return True


def main():
    if sys.argv[1] == "sent":
        sys.exit(0 if sent_body(sys.argv[2], sys.argv[3]) else 1)
    case, host, d = sys.argv[1], sys.argv[2], sys.argv[3]
    ok = {
        "smtplib": lambda: case_smtplib(host, d),
        "utf8": lambda: case_utf8(host, d),
        "tls-plain": lambda: case_smtplib(host, d, "plain"),
        "tls-login": lambda: case_smtplib(host, d, "login"),
        "bdat": lambda: case_bdat(host, d),
        "smuggle": lambda: case_smuggle(host, d, False),
        "smuggle-normalise": lambda: case_smuggle(host, d, True),
        "inject": lambda: case_inject(host, d),
    }[case]()
    if ok:
        print(f"ok {case}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
