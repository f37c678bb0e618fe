#!/usr/bin/python3
"""test_inject.py - dmta-inject keeps good lines and names the bad ones.

Usage: test_inject.py DMTA_INJECT DMTA_QUEUE
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    inject, queue = sys.argv[1:3]
    d = tempfile.mkdtemp(prefix="dmta-t-queue-inject-")
    fails = []
    try:
        conf = os.path.join(d, "dmta.conf")
        with open(conf, "w") as f:
            f.write("[spool]\npath = %s/spool\nmessage_size_limit = 64k\n" % d)
        mfile = os.path.join(d, "m.eml")
        with open(mfile, "wb") as f:
            f.write(b"Subject: from a file\r\n\r\nfile body\r\n")
        good = {"from": "a@b.org", "to": ["x@y.org"], "data": "Subject: g\r\n\r\nbody\r\n"}
        lines = []
        want_bad = {}
        for i in range(1, 201):
            if i % 10 == 3:
                lines.append("{not json")
                want_bad[i] = "not a JSON object|expected"
            elif i % 10 == 5:
                lines.append(json.dumps(dict(good, to=["bad address"])))
                want_bad[i] = "bad \"to\" address"
            elif i % 10 == 7:
                lines.append(json.dumps(dict(good, data="x" * 70000)))
                want_bad[i] = "too large"
            elif i % 50 == 9:
                lines.append(json.dumps({"from": "a@b.org", "to": "q@r.org", "path": mfile}))
            elif i % 50 == 19:
                lines.append("")
            else:
                lines.append(json.dumps(dict(good, data="Subject: %d\r\n\r\nline %d\r\n" % (i, i))))
        p = subprocess.run([inject, "-c", conf, "--ids", "-b", "17"],
                           input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=60)
        err = p.stderr.decode().splitlines()
        if p.returncode != 65:
            fails.append("got exit %d, want 65 (some lines rejected)" % p.returncode)
        seen_bad = {}
        for ln in err:
            m = re.match(r"dmta-inject: line (\d+): (.*)", ln)
            if m:
                seen_bad[int(m.group(1))] = m.group(2)
        if sorted(seen_bad) != sorted(want_bad):
            fails.append("got bad lines %s, want %s" % (sorted(seen_bad), sorted(want_bad)))
        for n, pat in want_bad.items():
            if n in seen_bad and not re.search(pat, seen_bad[n]):
                fails.append("line %d: got %r, want /%s/" % (n, seen_bad[n], pat))
        if not err or not re.search(r"\d+ messages queued .* msg/s; 60 lines rejected", err[-1]):
            fails.append("no summary line: %r" % err[-1:])
        ids = dict(l.split() for l in p.stdout.decode().splitlines())
        want_good = [i for i in range(1, 201) if i not in want_bad and lines[i - 1]]
        if sorted(int(k) for k in ids) != want_good:
            fails.append("acknowledged lines differ: %d of %d" % (len(ids), len(want_good)))
        lst = json.loads(subprocess.run([queue, "-c", conf, "--json", "list"],
                                        capture_output=True).stdout)
        if lst["count"] != len(want_good):
            fails.append("spool holds %d messages, want %d" % (lst["count"], len(want_good)))
        for n, qid in ids.items():
            body = subprocess.run([queue, "-c", conf, "cat", qid], capture_output=True).stdout
            src = json.loads(lines[int(n) - 1])
            want = open(mfile, "rb").read() if "path" in src else src["data"].encode()
            if body != want:
                fails.append("line %s (%s): stored %r, want %r" % (n, qid, body[:60], want[:60]))
                break
        # A spool that cannot be created: 73, nothing else happens.
        with open(conf, "w") as f:
            f.write("[spool]\npath = %s/no/such/spool\n" % d)
        p = subprocess.run([inject, "-c", conf], input=b"", capture_output=True)
        if p.returncode != 73:
            fails.append("uncreatable spool: got %d, want 73" % p.returncode)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for f in fails:
        print("FAIL " + f)
    print("ok" if not fails else "%d failures" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
