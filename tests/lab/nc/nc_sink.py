#!/usr/bin/python3
"""nc_sink.py - kernel TCP sinks and sources for dmta-nc's lab tests.

  nc_sink.py sink ADDR PORT SECONDS
      accept connections (any number, at once), read each to its end, close;
      on exit (after SECONDS or SIGTERM) print "conns=N bytes=B sha256=H" where
      H is the sha256 of the first connection's bytes.
  nc_sink.py send ADDR PORT FILE [CC]
      connect (retrying for 10 s), send FILE, half-close, read to the end;
      print "sent=B". CC names the kernel's congestion control for this
      socket (TCP_CONGESTION: cubic, bbr, reno); default the namespace's.
"""
import hashlib
import selectors
import signal
import socket
import sys
import time


def sink(addr, port, seconds):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(16384)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    first = None
    h = hashlib.sha256()
    conns = total = closed = 0
    end = time.time() + seconds
    print("listening", flush=True)
    while time.time() < end and not stop:
        for key, _ in sel.select(0.5):
            if key.fileobj is ls:
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    c.setblocking(False)
                    if first is None:
                        first = c
                    conns += 1
                    sel.register(c, selectors.EVENT_READ)
                continue
            c = key.fileobj
            try:
                d = c.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                d = b""
            if d:
                total += len(d)
                if c is first:
                    h.update(d)
                continue
            sel.unregister(c)
            c.close()
            closed += 1
            # For the caller to wait on, rather than on time.
            print(f"closed={closed} bytes={total}", flush=True)
    print(f"conns={conns} bytes={total} sha256={h.hexdigest()}", flush=True)


def send(addr, port, path, cc=None):
    end = time.time() + 10
    while True:
        try:
            s = socket.socket()
            if cc:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
            s.settimeout(120)
            s.connect((addr, port))
            break
        except OSError:
            s.close()
            if time.time() > end:
                raise
            time.sleep(0.1)
    n = 0
    with open(path, "rb") as f:
        while True:
            d = f.read(1 << 16)
            if not d:
                break
            s.sendall(d)
            n += len(d)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()
    print(f"sent={n}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        sys.exit("usage: nc_sink.py sink ADDR PORT SECONDS | send ADDR PORT FILE [CC]")
