#!/usr/bin/python3
"""shard_sink.py - an aiosmtpd receiver on several addresses that records
every connection, for the sharding and connection-limit lab test.

Usage: shard_sink.py --log FILE ADDR...

Listens on port 25 of each ADDR and appends to FILE, one line per event:
  open  MONOTONIC_NS LOCAL_ADDR PEER_PORT PEER_ADDR
  close MONOTONIC_NS LOCAL_ADDR PEER_PORT PEER_ADDR
  msg   MONOTONIC_NS LOCAL_ADDR PEER_PORT SHA256 RCPT[,RCPT...] PEER_ADDR
Events are written in the order the event loop sees them, so a reader can
replay them to count connections open at once per address. Runs until
killed.
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
    def __init__(self, log):
        self.log = log

    async def handle_DATA(self, server, session, envelope):
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


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("addrs", nargs="+")
    a = ap.parse_args()
    log = Log(a.log)
    handler = Handler(log)
    loop = asyncio.get_running_loop()
    for addr in a.addrs:
        await loop.create_server(lambda: TrackingSMTP(handler, log), host=addr, port=25,
                                 backlog=256)
    log.write("ready", time.monotonic_ns(), "-", 0)
    await asyncio.Event().wait()


asyncio.run(main())
