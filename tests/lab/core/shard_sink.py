#!/usr/bin/python3
"""shard_sink.py - an aiosmtpd receiver on several addresses that records
every connection, for the lab tests of sharding, egress and traffic
control.

Usage: shard_sink.py --log FILE [--hold SECONDS] [--mail-reply FILE] ADDR...

Listens on port 25 of each ADDR and appends to FILE, one line per event:
  open    MONOTONIC_NS LOCAL_ADDR PEER_PORT PEER_ADDR
  close   MONOTONIC_NS LOCAL_ADDR PEER_PORT PEER_ADDR
  msg     MONOTONIC_NS LOCAL_ADDR PEER_PORT SHA256 RCPT[,RCPT...] PEER_ADDR
  refused MONOTONIC_NS LOCAL_ADDR PEER_PORT PEER_ADDR CODE
Events are written in the order the event loop sees them, so a reader can
replay them to count connections open at once per address. Runs until
killed.

It answers 550 5.1.1 to every recipient whose local part begins with
"bad", holds each transaction --hold seconds before its 250 (so that a
sender's connections pile up), and, while the file --mail-reply names
holds a reply (e.g. "421 4.7.28 rate limited"), answers it to every MAIL
FROM (logged as "refused"), closing the connection after a 421 as a
server that goes away does.
"""
import argparse
import asyncio
import hashlib
import time

from aiosmtpd.smtp import SMTP


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, *fields):
        self.f.write(" ".join(str(x) for x in fields) + "\n")


class Handler:
    def __init__(self, log, hold, mail_reply):
        self.log = log
        self.hold = hold
        self.mail_reply = mail_reply

    def refusal(self):
        if not self.mail_reply:
            return None
        try:
            with open(self.mail_reply) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.refusal()
        if reply is not None:
            self.log.write("refused", time.monotonic_ns(), *server.key, reply.split()[0])
            server.close_after = reply.startswith("421")
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bad"):
            return "550 5.1.1 %s: user unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        if self.hold:
            await asyncio.sleep(self.hold)
        local = server.transport.get_extra_info("sockname")
        self.log.write("msg", time.monotonic_ns(), local[0], session.peer[1],
                       hashlib.sha256(envelope.original_content).hexdigest(),
                       ",".join(envelope.rcpt_tos), session.peer[0])
        return "250 2.0.0 ok"


class TrackingSMTP(SMTP):
    def __init__(self, handler, log):
        super().__init__(handler, hostname="shard-sink.test", decode_data=False,
                         enable_SMTPUTF8=True)
        self.log = log
        self.key = None
        self.close_after = False

    def connection_made(self, transport):
        local = transport.get_extra_info("sockname")
        peer = transport.get_extra_info("peername")
        self.key = (local[0], peer[1], peer[0])
        self.log.write("open", time.monotonic_ns(), *self.key)
        super().connection_made(transport)

    def connection_lost(self, exc):
        if self.key is not None:
            self.log.write("close", time.monotonic_ns(), *self.key)
        super().connection_lost(exc)

    async def smtp_MAIL(self, arg):
        await super().smtp_MAIL(arg)
        if self.close_after:
            self.transport.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--hold", type=float, default=0.0)
    ap.add_argument("--mail-reply")
    ap.add_argument("addrs", nargs="+")
    a = ap.parse_args()
    log = Log(a.log)
    handler = Handler(log, a.hold, a.mail_reply)
    loop = asyncio.get_running_loop()
    for addr in a.addrs:
        await loop.create_server(lambda: TrackingSMTP(handler, log), host=addr, port=25,
                                 backlog=256)
    log.write("ready", time.monotonic_ns(), "-", 0)
    await asyncio.Event().wait()


asyncio.run(main())
