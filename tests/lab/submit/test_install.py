"""Lab: after meson install, an unprivileged user's mail(1) reaches the lab's
Postfix byte for byte, and users cannot touch each other's queued mail.

Nothing on the machine changes: meson install goes into a DESTDIR, and the
installed sendmail is bind-mounted over /usr/sbin/sendmail only
inside a private mount namespace, where /etc is an overlay holding
/etc/dmta/dmta.conf. The machine's own /usr/sbin/sendmail (Postfix's, which
the lab uses) is never written. Needs what tools/setup makes: the group
dmtadrop, the users dmtatest1 and dmtatest2, bsd-mailx.

Checked:
- the DESTDIR: dmta-sendmail mode 2755 root:dmtadrop; sendmail in sbindir,
  mailq and newaliases in bindir, all links to it; the spool 0710 and its
  maildrop 1770 (sticky), root:dmtadrop; dmtad.service naming the
  installed dmtad;
- dmtatest1: "echo body | mail -s SUBJECT someone@postfix.test" exits 0
  while dmtad is not running, and the message waits in the maildrop as a
  file of dmtatest1's, mode 0600;
- dmtatest2 cannot list the maildrop, read or delete that file, read the
  spool's database, run mailq or sendmail -q, or choose a configuration
  (-C, $DMTA_CONFIG): each refused; newaliases says there is no aliases
  database and exits 0;
- dmtad, started afterwards, picks the file up and delivers it: the lab
  Postfix's Maildir holds the queued bytes (line ends aside: a Maildir
  keeps LF) after the fields Postfix adds, less the X-Dmta-Tenant field
  mail -a added, which dmtad took at pickup: the message, still queued
  for a greylisted second recipient, has that tenant and the pool and
  priority of [user dmtatest1];
- a bad X-Dmta-Priority makes the installed sendmail exit 65 as
  dmtatest1, with nothing left in the maildrop.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../core"))
from labutil import BUILD, check, dmtad_conf, dmtad_start, fail, lab  # noqa: E402

MAILDIR = "/run/dmta-lab/postfix/mail/box/new"

for what, cmd in (("group dmtadrop", ["getent", "group", "dmtadrop"]),
                  ("user dmtatest1", ["getent", "passwd", "dmtatest1"]),
                  ("user dmtatest2", ["getent", "passwd", "dmtatest2"])):
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        fail("%s is missing: run tools/setup" % what)
if not os.path.exists("/usr/bin/bsd-mailx"):
    fail("bsd-mailx is missing: run tools/setup")

lab("up")
tmp = tempfile.mkdtemp(prefix="dmta-install-")
os.chmod(tmp, 0o755)
dest = os.path.join(tmp, "root")
r = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest, "--quiet",
                    "--no-rebuild"], capture_output=True, text=True, timeout=300)
check(r.returncode == 0, "meson install: exit %d: %s" % (r.returncode, r.stderr[-2000:]))

# What meson install made.
info = subprocess.run(["meson", "introspect", BUILD, "--buildoptions"], capture_output=True,
                      text=True).stdout
import json  # noqa: E402
opts = {o["name"]: o["value"] for o in json.loads(info)}
prefix = opts["prefix"]
bindir = os.path.join(prefix, opts["bindir"])
sbindir = os.path.join(prefix, opts["sbindir"])
sm = dest + bindir + "/dmta-sendmail"
st = os.stat(sm)
import grp  # noqa: E402
drop_gid = grp.getgrnam("dmtadrop").gr_gid
check(st.st_mode & 0o7777 == 0o2755 and st.st_uid == 0 and st.st_gid == drop_gid,
      "dmta-sendmail: mode %o uid %d gid %d, want 2755 root:dmtadrop" % (
          st.st_mode & 0o7777, st.st_uid, st.st_gid))
for link, d in (("sendmail", sbindir), ("mailq", bindir), ("newaliases", bindir)):
    p = dest + d + "/" + link
    check(os.path.islink(p), "%s is not a link" % p)
    target = os.readlink(p)
    check(os.path.basename(target) == "dmta-sendmail", "%s -> %s, want dmta-sendmail" % (p, target))
for d, mode in (("/var/spool/dmta", 0o710), ("/var/spool/dmta/maildrop", 0o1770)):
    st = os.stat(dest + d)
    check(st.st_mode & 0o7777 == mode and st.st_uid == 0 and st.st_gid == drop_gid,
          "%s: mode %o, want %o root:dmtadrop" % (d, st.st_mode & 0o7777, mode))
unit = open(dest + prefix + "/lib/systemd/system/dmtad.service").read()
check("ExecStart=%s/dmtad " % bindir in unit, "dmtad.service does not name %s/dmtad" % bindir)
print("ok: meson install: dmta-sendmail 2755 root:dmtadrop, sendmail/mailq/newaliases links, "
      "spool 0710 and maildrop 1770, dmtad.service")

# The installed spool's layout, for this test's spool.
spool = os.path.join(tmp, "spool")
subprocess.run(["cp", "-a", dest + "/var/spool/dmta", spool], check=True)
conf = os.path.join(tmp, "dmta.conf")
dmtad_conf(conf, spool, "kernel", """[smtp]
helo_name = dmta.test
[queue]
myhostname = dmta.test
[user dmtatest1]
pool = drop-pool
priority = bulk
[pool drop-pool]
sources = default
""")
os.makedirs(os.path.join(tmp, "etc-up", "dmta"))
os.makedirs(os.path.join(tmp, "etc-work"))
shutil.copy(conf, os.path.join(tmp, "etc-up", "dmta", "dmta.conf"))
os.chmod(os.path.join(tmp, "etc-up", "dmta", "dmta.conf"), 0o644)

subject = "dmta-install-" + uuid.uuid4().hex[:12]
script = r"""
set -u
mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/etc-up,workdir=$T/etc-work /etc || exit 90
mount --bind "$SM" /usr/sbin/sendmail || exit 91
u1() { setpriv --reuid=dmtatest1 --regid=dmtatest1 --init-groups "$@"; }
u2() { setpriv --reuid=dmtatest2 --regid=dmtatest2 --init-groups "$@"; }
cd /
echo body | u1 mail -a "X-Dmta-Tenant: drop-tenant" -s "$SUBJECT" someone@postfix.test \
	"$SUBJECT@tempfail.test"; echo "mail=$?"
f=$(ls "$T/spool/maildrop" | head -1)
echo "file=$f"
printf 'X-Dmta-Priority: urgent\n\nx\n' | u1 /usr/sbin/sendmail someone@postfix.test 2>"$T/bad.err"
echo "bad=$?"
echo "files=$(ls "$T/spool/maildrop" | wc -l)"
u2 ls "$T/spool/maildrop" >/dev/null 2>&1; echo "list=$?"
u2 cat "$T/spool/maildrop/$f" >/dev/null 2>&1; echo "read=$?"
u2 rm -f "$T/spool/maildrop/$f" >/dev/null 2>&1; echo "delete=$?"
u2 cat "$T/spool/data.mdb" >/dev/null 2>&1; echo "readdb=$?"
u2 /usr/sbin/sendmail -bp >/dev/null 2>&1; echo "bp=$?"
u2 /usr/sbin/sendmail -q >/dev/null 2>&1; echo "q=$?"
u2 /usr/sbin/sendmail -C /tmp/x.conf someone@postfix.test </dev/null 2>"$T/c.err"; echo "C=$?"
DMTA_CONFIG=/tmp/x.conf u2 /usr/sbin/sendmail someone@postfix.test </dev/null >/dev/null 2>&1; echo "env=$?"
u2 /usr/sbin/sendmail -bi >"$T/bi.out" 2>&1; echo "bi=$?"
[ -e "$T/spool/maildrop/$f" ]; echo "still=$?"
"""
env = dict(os.environ, T=tmp, SM=sm, SUBJECT=subject)
r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                   capture_output=True, text=True, env=env, timeout=120)
res = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
print(r.stdout, r.stderr)
check(res.get("mail") == "0", "dmtatest1's mail(1): exit %s, want 0: %s" % (res.get("mail"), r.stderr))
name = res.get("file", "")
check(name != "", "nothing in the maildrop after mail(1)")
st = os.stat(os.path.join(spool, "maildrop", name))
import pwd  # noqa: E402
uid1 = pwd.getpwnam("dmtatest1").pw_uid
check(st.st_uid == uid1, "maildrop file owned by uid %d, want dmtatest1 (%d)" % (st.st_uid, uid1))
check(st.st_mode & 0o777 == 0o600, "maildrop file mode %o, want 600" % (st.st_mode & 0o777))
for what in ("list", "read", "delete", "readdb"):
    check(res.get(what) not in (None, "0"), "dmtatest2 could %s (exit %s)" % (what, res.get(what)))
for what in ("bp", "q", "C", "env"):
    check(res.get(what) == "77", "dmtatest2: sendmail %s: exit %s, want 77" % (what, res.get(what)))
check("-C is for root only" in open(os.path.join(tmp, "c.err")).read(), "-C refusal not explained")
check(res.get("bi") == "0" and "no aliases database" in open(os.path.join(tmp, "bi.out")).read(),
      "newaliases: exit %s, want 0 and a word about the aliases database" % res.get("bi"))
check(res.get("still") == "0", "the maildrop file went away before dmtad ran")
check(res.get("bad") == "65" and res.get("files") == "1" and
      "X-Dmta-Priority: want normal, high or bulk" in open(os.path.join(tmp, "bad.err")).read(),
      "dmtatest1's sendmail with a bad X-Dmta-Priority: exit %s, %s files in the maildrop, want "
      "65 and one" % (res.get("bad"), res.get("files")))
print("ok: mail(1) as dmtatest1 queued %s (0600, dmtatest1's) with dmtad down; dmtatest2 cannot "
      "list, read or delete it, nor read the spool; -bp, -q, -C, $DMTA_CONFIG refused (77); "
      "newaliases exits 0" % name)

# The message as queued.
raw = open(os.path.join(spool, "maildrop", name), "rb").read()
check(raw[:8] == b"DMTADRP1", "maildrop file magic %r" % raw[:8])
elen = struct.unpack("<I", raw[8:12])[0]
queued = raw[12 + elen:]
check(subject.encode() in queued and queued.endswith(b"body\r\n"), "queued message: %r" % queued[:300])
check(b"\r\nX-Dmta-Tenant: drop-tenant\r\n" in queued, "the maildrop file lost X-Dmta-Tenant: "
      "dmtad, not sendmail, takes it")

before = set(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else set()
d = dmtad_start(conf)
found = None
try:
    end = time.time() + 60
    while time.time() < end and found is None:
        for n in (set(os.listdir(MAILDIR)) if os.path.isdir(MAILDIR) else set()) - before:
            data = open(os.path.join(MAILDIR, n), "rb").read()
            if subject.encode() in data:
                found = data
        time.sleep(0.3)
    # Still queued: tempfail.test defers every address's first attempt.
    q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json",
                        "list"], capture_output=True, text=True, timeout=30)
finally:
    d.terminate()
    out, _ = d.communicate(timeout=60)
print(out)
check(d.returncode == 0, "dmtad exit %d" % d.returncode)
check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
check("pickup: " in out and "uid=%d" % st.st_uid in out, "no pickup line naming dmtatest1's uid")
check(found is not None, "the message never reached the lab Postfix's Maildir")
want = queued.replace(b"\r\nX-Dmta-Tenant: drop-tenant\r\n", b"\r\n").replace(b"\r\n", b"\n")
check(found.endswith(want), "Maildir copy differs from what was queued:\n--- queued\n%r\n--- Maildir\n%r"
      % (want, found))
check(not os.listdir(os.path.join(spool, "maildrop")), "maildrop not emptied")
msgs = json.loads(q.stdout)["messages"] if q.returncode == 0 else []
got = [(m["pool"], m["priority"], m["tenant"]) for m in msgs]
check(got == [("drop-pool", "bulk", "drop-tenant")],
      "queued for the greylisted recipient: got %s, want [user dmtatest1]'s pool and priority "
      "and the tenant of its X-Dmta-Tenant" % got)
print("ok: picked up after dmtad started and delivered to postfix.test: the Maildir ends with the "
      "%d queued bytes less X-Dmta-Tenant; pool, priority and tenant %s" % (len(want), got[0]))
subprocess.run(["rm", "-rf", tmp])
