"""Bad injection input: JSON lines for dmta-inject and command lines and
messages for dmta-sendmail. Each must be refused with its sysexits code
and a line that says why, and leave the spool exactly as it was (every
envelope and message byte compared); a bad line among good ones refuses
that line only.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from faultlib import (EX_DATAERR, EX_NOUSER, EX_USAGE, INJECT, QUEUE, SENDMAIL,  # noqa: E402
                      Spool, check, fail)

GOOD = {"from": "a@dmta.test", "to": ["b@peer.test"], "data": "Subject: t\r\n\r\nbody\r\n"}


def j(**kw):
    m = dict(GOOD)
    for k, v in kw.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return json.dumps(m)


def snapshot(conf):
    p = subprocess.run([QUEUE, "-c", conf, "--json", "list"], capture_output=True, timeout=30)
    out = [p.returncode, p.stdout]
    for qid in re.findall(rb'"id":"([0-9A-F]+)"', p.stdout):
        out.append(subprocess.run([QUEUE, "-c", conf, "cat", qid.decode()],
                                  capture_output=True, timeout=30).stdout)
    return out


def main():
    sp = Spool({})
    failures = []
    try:
        text = open(sp.conf).read().replace("[spool]\n", "[spool]\nmessage_size_limit = 65536\n", 1)
        open(sp.conf, "w").write(text)
        sp.inject([GOOD])  # a spool with something in it
        big = os.path.join(sp.tmp, "big.eml")
        with open(big, "w") as f:
            f.write("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 2000)
        nul = os.path.join(sp.tmp, "nul.eml")
        with open(nul, "wb") as f:
            f.write(b"Subject: n\r\n\r\nab\0cd\r\n")
        inject_cases = [
            ("empty line", "   ", r"JSON|expected|empty"),
            ("not JSON", "hello", r"JSON|expected"),
            ("a JSON array", "[1,2]", r"object"),
            ("truncated object", '{"from":"a@dmta.test","to":["b@p.test"]', r"."),
            ("no to", j(to=None), r"to"),
            ("empty to", j(to=[]), r"to"),
            ("to not a list of strings", j(to=[1]), r"string|expected"),
            ("no data nor path", j(data=None), r"data|path"),
            ("data and path", j(path="/etc/hostname"), r"data|path"),
            ("duplicate key", '{"from":"a@dmta.test","from":"b@dmta.test","to":["b@p.test"],"data":"x"}',
             r"duplicate"),
            ("unknown key", j(bcc="x@y.test"), r"unknown key"),
            ("NUL escape in data", j(data="Subject: x\r\n\r\na\u0000b\r\n"), r"NUL|\\u0000|control"),
            ("lone surrogate", '{"from":"a@dmta.test","to":["b@p.test"],"data":"\\ud800"}',
             r"surrogate|escape|UTF"),
            ("bad escape", '{"from":"a@dmta.test","to":["b@p.test"],"data":"\\q"}', r"escape"),
            ("raw control in string", '{"from":"a@dmta.test","to":["b@p.test"],"data":"a\tb"}',
             r"control|character"),
            ("trailing garbage", j() + " x", r"after|garbage|expected"),
            ("bad sender", j(**{"from": "a b@dmta.test"}), r"from|sender"),
            ("sender CRLF", j(**{"from": "a@dmta.test\r\nBcc: v@x.test"}), r"from|sender"),
            ("to without domain", j(to=["user@"]), r"to"),
            ("to double dot", j(to=["a..b@p.test"]), r"to"),
            ("to angle in quotes", j(to=['"x>y"@p.test']), r"to"),
            ("to CRLF injection", j(to=["b@p.test\r\nRCPT TO:<v@x.test>"]), r"to"),
            ("to label of 64", j(to=["u@" + "b" * 64 + ".test"]), r"to"),
            ("to local part of 65", j(to=["a" * 65 + "@p.test"]), r"to"),
            ("to bad literal", j(to=["a@[1.2.3]"]), r"to"),
            ("to bad UTF-8 escape", j(to=["\udcff@p.test"]), r"to|UTF|surrogate|escape"),
            ("envid empty", j(envid=""), r"envid"),
            ("envid with space", j(envid="a b"), r"envid"),
            ("envid of 101", j(envid="e" * 101), r"envid"),
            ("notify unknown", j(notify=["often"]), r"notify"),
            ("notify never with others", j(notify=["never", "success"]), r"notify"),
            ("ret unknown", j(ret="body"), r"ret"),
            ("message too large", j(data="Subject: x\r\n\r\n" + "y" * 70000), r"too large"),
            ("path missing", j(data=None, path=os.path.join(sp.tmp, "nope.eml")), r"path"),
            ("path a directory", j(data=None, path=sp.tmp), r"path"),
            ("path too large", j(data=None, path=big), r"path|too large"),
            ("path with NUL", j(data=None, path=nul), r"NUL"),
            ("8-bit in to without SMTPUTF8 form", j(to=["b\u00e9@p..test"]), r"to"),
        ]
        for name, line, pat in inject_cases:
            before = snapshot(sp.conf)
            r = subprocess.run([INJECT, "-c", sp.conf], input=line + "\n", capture_output=True,
                               text=True, timeout=30, errors="replace")
            after = snapshot(sp.conf)
            first = r.stderr.splitlines()[0] if r.stderr else ""
            if r.returncode != EX_DATAERR:
                failures.append("inject %s: got exit %d (%r), want %d"
                                % (name, r.returncode, r.stderr.strip()[:200], EX_DATAERR))
            elif not re.search(r"line 1\b", first) or not re.search(pat, first, re.I):
                failures.append("inject %s: got %r, want 'line 1: ...' matching /%s/"
                                % (name, first, pat))
            elif before != after:
                failures.append("inject %s: the spool changed" % name)
            else:
                print("ok   inject %-28s exit %d  %s" % (name, r.returncode, first))
        # One bad line among good ones: that line only.
        before = len(sp.listing())
        r = subprocess.run([INJECT, "-c", sp.conf],
                           input=j() + "\n" + j(to=["bad@"]) + "\n" + j() + "\n",
                           capture_output=True, text=True, timeout=30)
        if r.returncode != EX_DATAERR or "line 2" not in r.stderr or len(sp.listing()) != before + 2:
            failures.append("inject mixed: exit %d, %r, %d new messages; want %d, line 2, 2"
                            % (r.returncode, r.stderr.strip(), len(sp.listing()) - before,
                               EX_DATAERR))
        else:
            print("ok   inject mixed good and bad lines: the bad one refused")
        # Usage errors.
        for name, args, want in (("unknown option", ["-Z"], EX_USAGE),
                                 ("missing config", ["-c", os.path.join(sp.tmp, "no.conf")], 78)):
            before = snapshot(sp.conf)
            r = subprocess.run([INJECT] + args, input=j() + "\n", capture_output=True, text=True,
                               timeout=30)
            if r.returncode != want or not r.stderr.strip() or snapshot(sp.conf) != before:
                failures.append("inject %s: got exit %d %r, want %d"
                                % (name, r.returncode, r.stderr.strip(), want))
            else:
                print("ok   inject %-28s exit %d  %s" % (name, r.returncode,
                                                         r.stderr.splitlines()[0]))
        ok = b"Subject: t\n\nbody\n"
        sendmail_cases = [
            ("no recipients", [], ok, EX_USAGE),
            ("unknown option", ["-Z", "a@b.test"], ok, EX_USAGE),
            ("-f header injection", ["-f", "a@b.test\nBcc: v@x.test", "a@b.test"], ok, EX_USAGE),
            ("-V with a space", ["-V", "a b", "a@b.test"], ok, EX_USAGE),
            ("-N unknown", ["-N", "sometimes", "a@b.test"], ok, EX_USAGE),
            ("rcpt CRLF injection", ["a@b.test\r\nBcc: v@x.test"], ok, EX_NOUSER),
            ("rcpt angle in quotes", ['"x>y"@b.test'], ok, EX_NOUSER),
            ("NUL in body", ["a@b.test"], b"Subject: x\n\nab\0cd\n", EX_DATAERR),
            ("oversize message", ["a@b.test"], b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 1000,
             EX_DATAERR),
            ("-t without recipients", ["-t"], b"Subject: none\n\nbody\n", EX_USAGE),
        ]
        for name, args, data, want in sendmail_cases:
            before = snapshot(sp.conf)
            r = subprocess.run([SENDMAIL, "-C", sp.conf] + args, input=data, capture_output=True,
                               timeout=30)
            err = r.stderr.decode(errors="replace")
            if r.returncode != want or len(err.splitlines()) != 1 or snapshot(sp.conf) != before:
                failures.append("sendmail %s: got exit %d %r, spool %s; want %d, one line, "
                                "unchanged" % (name, r.returncode, err,
                                               "same" if snapshot(sp.conf) == before else "changed",
                                               want))
            else:
                print("ok   sendmail %-26s exit %d  %s" % (name, r.returncode, err.strip()))
        n = len(inject_cases) + 3 + len(sendmail_cases)
        if failures:
            fail("%d of %d cases:\n  %s" % (len(failures), n, "\n  ".join(failures)))
        print("%d bad inputs refused, the spool untouched" % n)
    finally:
        sp.close()


if __name__ == "__main__":
    main()
