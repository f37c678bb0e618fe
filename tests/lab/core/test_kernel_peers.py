"""dmtad (backend = kernel) against misbehaving SMTP servers on loopback.

Each server is a real TCP peer run by this script on 127.0.0.1; dmtad
reaches it through a [routes] entry, so no DNS is asked. What is checked:
dmtad outlives the server's misbehaviour, the message stays queued
(deferred, never lost) and dmtad stops cleanly on SIGTERM."""
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ["DMTA_BUILD"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def rst_in_data(conn):
    """Takes the transaction up to DATA, reads some body, then resets."""
    f = conn.makefile("rb")
    conn.sendall(b"220 rst.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd in (b"EHLO", b"HELO"):
            conn.sendall(b"250 rst.test\r\n")
        elif cmd in (b"MAIL", b"RCPT"):
            conn.sendall(b"250 ok\r\n")
        elif cmd == b"DATA":
            conn.sendall(b"354 go on\r\n")
            f.read(65536)
            # Close with unread bytes and no linger: the kernel sends RST.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        else:
            conn.sendall(b"250 ok\r\n")


def tls_then_rst(conn):
    """STARTTLS, then a reset at MAIL: the client's TLS close_notify then
    goes to a socket the peer has reset."""
    f = conn.makefile("rb")
    conn.sendall(b"220 rst.test ESMTP\r\n")
    line = f.readline()
    conn.sendall(b"250-rst.test\r\n250 STARTTLS\r\n")
    line = f.readline()
    if not line.upper().startswith(b"STARTTLS"):
        return
    conn.sendall(b"220 go ahead\r\n")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    tls = ctx.wrap_socket(conn, server_side=True)
    tf = tls.makefile("rb")
    while True:
        line = tf.readline()
        if not line:
            return
        if line[:4].upper() in (b"EHLO", b"HELO"):
            tls.sendall(b"250 rst.test\r\n")
        else:
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tls.close()
            return


def reject_rcpts_pipelined(conn):
    """PIPELINING and CHUNKING; every recipient refused while the body of
    BDAT is still on its way, which is read only later."""
    f = conn.makefile("rb")
    conn.sendall(b"220 rej.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            conn.sendall(b"250-rej.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
        elif cmd == b"MAIL":
            conn.sendall(b"250 ok\r\n")
        elif cmd == b"RCPT":
            conn.sendall(b"550 5.1.1 no such user\r\n")
        elif cmd == b"BDAT":
            time.sleep(1)
            n = int(line.split()[1])
            while n > 0:
                got = f.read(min(n, 65536))
                if not got:
                    return
                n -= len(got)
            conn.sendall(b"554 5.5.1 no valid recipients\r\n")
        elif cmd == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return
        else:
            conn.sendall(b"250 ok\r\n")


def refuse_mid_body(conn):
    """Answers 554 in the middle of the DATA body, then reads on."""
    f = conn.makefile("rb")
    conn.sendall(b"220 mid.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"DATA":
            conn.sendall(b"354 go on\r\n")
            f.read(65536)
            conn.sendall(b"554 5.6.0 enough\r\n")
            while f.read(65536):
                pass
            return
        conn.sendall(b"250 ok\r\n")


def silent_after_dot(conn):
    """Takes the whole message, then never answers the final dot."""
    f = conn.makefile("rb")
    conn.sendall(b"220 slow.test ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line[:4].upper()
        if cmd == b"DATA":
            conn.sendall(b"354 go on\r\n")
            while f.readline() not in (b".\r\n", b""):
                pass
            f.read()  # until dmtad gives up and closes
            return
        conn.sendall(b"250 ok\r\n")


def serve(lsock, handler, stop):
    lsock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        conn.settimeout(10)
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


def run_case(name, handler, body_size, settle_s, tls="none", queued=1):
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = %s
connect_timeout = 2s
[control]
stop_timeout = 1s
[queue]
min_backoff = 1h
""" % (tmp, port, tls))
    msg = {"from": "a@dmta.test", "to": ["b@peer.test"],
           "data": "Subject: %s\r\n\r\n%s\r\n" % (name, ("y" * 70 + "\r\n") * (body_size // 72))}
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                       input=json.dumps(msg) + "\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: dmta-inject: %s" % (name, r.stderr))
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(lsock, handler, stop), daemon=True)
    t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(settle_s)
        alive = d.poll() is None
        d.terminate()
        t0 = time.time()
        out, _ = d.communicate(timeout=30)
        stop_s = time.time() - t0
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        lsock.close()
        t.join(5)
    print(out)
    check(stop_s < 10, "%s: dmtad took %.1f s to stop" % (name, stop_s))
    check(alive, "%s: dmtad died (exit %s) while the server misbehaved" % (name, d.returncode))
    check(d.returncode == 0, "%s: dmtad exit %d after SIGTERM" % (name, d.returncode))
    check("AddressSanitizer" not in out and "runtime error" not in out, "%s: sanitizer report" % name)
    q = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf, "--json", "stats"],
                       capture_output=True, text=True, timeout=30)
    st = json.loads(q.stdout)
    check(st.get("messages") == queued, "%s: the message left the spool: %s" % (name, q.stdout))
    subprocess.run(["rm", "-rf", tmp])
    print("ok: %s" % name)


def accept_all(got, defer):
    def handler(conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 ok.test ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line[:4].upper()
            if cmd == b"DATA":
                conn.sendall(b"354 go on\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                got.append(1)
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif cmd == b"RCPT" and defer:
                conn.sendall(b"451 4.3.0 try later\r\n")
            else:
                conn.sendall(b"250 ok\r\n")
    return handler


def idle_timeout_zero():
    """idle_timeout = 0: each session ends with QUIT once its job is done,
    and dmtad goes on serving (and stops on SIGTERM)."""
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = none
idle_timeout = 0
""" % (tmp, port))
    msgs = [{"from": "a@dmta.test", "to": ["b%d@peer.test" % i], "data": "Subject: %d\r\n\r\nhi\r\n" % i}
            for i in range(3)]
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                       input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: %s" % r.stderr)
    got = []
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(lsock, accept_all(got, []), stop), daemon=True)
    t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    stopped = True
    try:
        end = time.time() + 10
        while time.time() < end and len(got) < 3:
            time.sleep(0.1)
        time.sleep(0.5)
        d.terminate()
        try:
            out, _ = d.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            stopped = False
            d.kill()
            out, _ = d.communicate(timeout=15)
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        lsock.close()
        t.join(5)
    print(out)
    check(len(got) == 3, "%d of 3 messages delivered with idle_timeout = 0" % len(got))
    check(stopped, "dmtad did not stop on SIGTERM with idle_timeout = 0")
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    subprocess.run(["rm", "-rf", tmp])
    print("ok: idle_timeout = 0")


def failover_after_busy_greeting():
    """The first exchanger greets with 421 and more in the same write; the
    second one must get a session of its own and take the message."""
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(8)
    good = socket.socket()
    good.bind(("127.0.0.2", 0))
    good.listen(8)
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d, 127.0.0.2:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = none
""" % (tmp, busy.getsockname()[1], good.getsockname()[1]))

    def busy_greeting(conn):
        conn.sendall(b"421 4.3.2 too busy\r\n" * 1000)
        time.sleep(0.5)

    msg = {"from": "a@dmta.test", "to": ["b@peer.test"], "data": "Subject: f\r\n\r\nhi\r\n"}
    r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "-c", conf],
                       input=json.dumps(msg) + "\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "dmta-inject: %s" % r.stderr)
    got = []
    stop = threading.Event()
    ts = [threading.Thread(target=serve, args=(busy, busy_greeting, stop), daemon=True),
          threading.Thread(target=serve, args=(good, accept_all(got, []), stop), daemon=True)]
    for t in ts:
        t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        end = time.time() + 5
        while time.time() < end and not got:
            time.sleep(0.1)
        d.terminate()
        out, _ = d.communicate(timeout=30)
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        busy.close()
        good.close()
        for t in ts:
            t.join(5)
    print(out)
    print(open(os.path.join(tmp, "spool/delivery.log")).read())
    check(len(got) == 1, "the second exchanger did not get the message")
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    subprocess.run(["rm", "-rf", tmp])
    print("ok: failover after a busy greeting")


def admin_while_running():
    """dmta-queue hold and release while dmtad runs take effect at once."""
    tmp = tempfile.mkdtemp(prefix="dmta-peers-")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    conf = os.path.join(tmp, "dmta.conf")
    with open(conf, "w") as f:
        f.write("""[spool]
path = %s/spool
[dns]
servers = 127.0.0.1:1
[routes]
peer.test = 127.0.0.1:%d
[delivery]
backend = kernel
[smtp]
helo_name = dmta.test
tls = none
""" % (tmp, port))

    def inject(n):
        msgs = [{"from": "a@dmta.test", "to": ["b%d@peer.test" % i], "data": "Subject: %d\r\n\r\nhi\r\n" % i}
                for i in range(n)]
        r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-inject"), "-q", "--ids", "-c", conf],
                           input="".join(json.dumps(m) + "\n" for m in msgs), capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, "dmta-inject: %s" % r.stderr)
        return [l.split()[1] for l in r.stdout.split("\n") if l.strip()]

    def queue(*args, must=True):
        r = subprocess.run([os.path.join(BUILD, "tools/queue/dmta-queue"), "-c", conf] + list(args),
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 or not must, "dmta-queue %s: %s" % (args, r.stderr))
        return r.stdout

    def wait_for(cond, secs):
        end = time.time() + secs
        while time.time() < end:
            if cond():
                return True
            time.sleep(0.1)
        return cond()

    held = inject(1)
    queue("hold", held[0])
    got = []
    defer = []
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(lsock, accept_all(got, defer), stop), daemon=True)
    t.start()
    d = subprocess.Popen([os.path.join(BUILD, "core/dmtad"), "-c", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        check(": ready:" in d.stdout.readline(), "dmtad did not start")
        time.sleep(1)
        check(len(got) == 0, "a held message was delivered")
        queue("release", held[0])
        released = wait_for(lambda: len(got) == 1, 5)
        # Held while dmtad runs: a flush must not send it.
        defer.append(1)
        ids = inject(1)
        check(wait_for(lambda: '"deferred"' in open(os.path.join(tmp, "spool/delivery.log")).read(), 5),
              "the second message was not tried")
        queue("hold", ids[0])
        defer.clear()
        queue("flush")
        time.sleep(2)
        n_after_hold = len(got)
        show = queue("--json", "show", ids[0], must=False)
        # Deleted while dmtad runs: forgotten, not tried (nor bounced) again.
        defer.append(1)
        gone = inject(1)
        check(wait_for(lambda: open(os.path.join(tmp, "spool/delivery.log")).read().count('"deferred"') >= 2, 5),
              "the third message was not tried")
        queue("delete", gone[0])
        defer.clear()
        queue("flush")
        time.sleep(1)
        after_delete = [json.loads(l) for l in open(os.path.join(tmp, "spool/delivery.log"))
                        if json.loads(l)["qid"] == gone[0] and json.loads(l)["outcome"] != "deferred"]
        d.terminate()
        out, _ = d.communicate(timeout=30)
    finally:
        if d.poll() is None:
            d.kill()
        stop.set()
        lsock.close()
        t.join(5)
    print(out)
    check(d.returncode == 0, "dmtad exit %d after SIGTERM" % d.returncode)
    check("AddressSanitizer" not in out and "runtime error" not in out, "sanitizer report")
    check(released, "a message released while dmtad runs was not delivered")
    check(n_after_hold == 1, "a message held while dmtad runs was delivered")
    check('"held":true' in show.replace(" ", ""), "the hold was lost: %s" % show)
    check(not after_delete, "a message deleted while dmtad runs was settled again: %r" % after_delete)
    subprocess.run(["rm", "-rf", tmp])
    print("ok: hold and release while dmtad runs")


failover_after_busy_greeting()
idle_timeout_zero()
admin_while_running()
KEYDIR = tempfile.mkdtemp(prefix="dmta-peers-key-")
CERT = os.path.join(KEYDIR, "cert.pem")
KEY = os.path.join(KEYDIR, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=rst.test", "-keyout", KEY, "-out", CERT],
               check=True, capture_output=True, timeout=60)
run_case("reset after STARTTLS", tls_then_rst, 1000, 3, tls="opportunistic")
run_case("recipients refused before the body is sent", reject_rcpts_pipelined, 4 << 20, 4)
run_case("refused in the middle of the body", refuse_mid_body, 4 << 20, 3)
run_case("SIGTERM while the server sits on the final dot", silent_after_dot, 1000, 2)
run_case("reset during DATA", rst_in_data, 4 << 20, 3)
subprocess.run(["rm", "-rf", KEYDIR])
