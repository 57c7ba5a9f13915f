#!/usr/bin/env python3
"""A table program for postern's proc-table tests, speaking either protocol.

Usage (as the daemon runs it): table-test.py DATA.json

DATA.json:
  "protocol":  "line" (OpenSMTPD 7.6+ text protocol 0.1, the default) or
               "imsg" (the binary protocol of OpenSMTPD <= 7.5)
  "services":  the services to register (line protocol), e.g. ["alias", "domain"]
  "SERVICE":   {key: value} for lookup services, [key, ...] for match services,
               [value, ...] for fetched services (source, relayhost; rotated)
  "log":       a file to which each request is appended (one line each)
  "marker":    a file: the "crash-once" key crashes only while it is absent

Keys that misbehave, whatever the service (or addresses with that local part):
  crash       exit(3) without answering
  crash-once  as crash, once: creates the marker file first
  hang        never answer
  garbage     answer a line (or message) that breaks the protocol
  twice       answer two replies to one request
"""
import json
import os
import struct
import sys
import time

SERVICES = {"alias": 0x1, "domain": 0x2, "credentials": 0x4, "netaddr": 0x8, "userinfo": 0x10,
            "source": 0x20, "mailaddr": 0x40, "addrname": 0x80, "mailaddrmap": 0x100,
            "relayhost": 0x200, "string": 0x400, "regex": 0x800, "auth": 0x1000}
NAMES = {v: k for k, v in SERVICES.items()}

data = json.load(open(sys.argv[1]))
rotation = {}


def log(text):
    if "log" in data:
        with open(data["log"], "a") as f:
            f.write(text + "\n")


def misbehave(key):
    """Acts on a misbehaving key; returns the garbage/twice marker or None."""
    key = key.split("@")[0]
    if key == "crash":
        os._exit(3)
    if key == "crash-once" and not os.path.exists(data["marker"]):
        open(data["marker"], "w").close()
        os._exit(3)
    if key == "hang":
        while True:
            time.sleep(60)
    return key if key in ("garbage", "twice") else None


def answer(service, key):
    """(found, value) for a lookup or check."""
    table = data.get(service)
    if isinstance(table, dict):
        return (key in table, table.get(key))
    if isinstance(table, list):
        return (key in table, key)
    return (False, None)


def fetch(service):
    values = data.get(service) or []
    if not values:
        return None
    n = rotation.get(service, 0)
    rotation[service] = n + 1
    return values[n % len(values)]


def run_line():
    out = sys.stdout
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line == "config|ready":
            log("handshake " + os.path.basename(sys.argv[0]))
            for s in data.get("services", []):
                out.write("register|%s\n" % s)
            out.write("register|ready\n")
            out.flush()
            continue
        if line.startswith("config|"):
            continue
        f = line.split("|", 7)
        # table|0.1|time|name|op|service|id|key  or  table|0.1|time|name|update|id
        op = f[4]
        log(line)
        if op == "update":
            out.write("update-result|%s|ok\n" % f[5])
        elif op == "fetch":
            v = fetch(f[5])
            out.write("fetch-result|%s|%s\n" % (f[6], "found|" + v if v else "not-found"))
        else:
            service, rid, key = f[5], f[6], f[7]
            odd = misbehave(key)
            if odd == "garbage":
                out.write("lookup-result|%s|maybe\n" % rid)
            else:
                found, value = answer(service, key)
                res = op + "-result|" + rid + "|"
                if not found:
                    res += "not-found"
                elif op == "check":
                    res += "found"
                else:
                    res += "found|" + value
                out.write(res + "\n")
                if odd == "twice":
                    out.write(res + "\n")
        out.flush()


def run_imsg():
    sock = os.fdopen(0, "r+b", buffering=0)
    buf = b""

    def send(payload):
        sock.write(struct.pack("=IHHII", 0, 16 + len(payload), 0, 0, os.getpid()) + payload)

    while True:
        while len(buf) < 16 or len(buf) < struct.unpack_from("=H", buf, 4)[0]:
            more = sock.read(65536)
            if not more:
                return
            buf += more
        mtype, mlen = struct.unpack_from("=IH", buf, 0)
        payload, buf = buf[16:mlen], buf[mlen:]
        if mtype == 2:  # OPEN
            version = struct.unpack_from("=I", payload, 0)[0]
            name = payload[4:].split(b"\0")[0].decode()
            log("open %d %s %d" % (version, name, len(payload)))
            send(b"")
        elif mtype == 3:  # CLOSE
            log("close")
            return
        elif mtype == 4:  # UPDATE
            log("update")
            send(struct.pack("=i", 1))
        elif mtype in (5, 6, 7):
            service, count = struct.unpack_from("=iQ", payload, 0)
            name = NAMES.get(service, "?")
            if mtype == 7:
                log("fetch %s" % name)
                v = fetch(name)
                send(struct.pack("=i", 1) + v.encode() + b"\0" if v else struct.pack("=i", 0))
                continue
            key = payload[12:].rstrip(b"\0").decode()
            log("%s %s %s" % ("check" if mtype == 5 else "lookup", name, key))
            odd = misbehave(key)
            if odd == "garbage":
                send(struct.pack("=i", 7))
                continue
            found, value = answer(name, key)
            if not found:
                reply = struct.pack("=i", 0)
            elif mtype == 5:
                reply = struct.pack("=i", 1)
            else:
                reply = struct.pack("=i", 1) + value.encode() + b"\0"
            send(reply)
            if odd == "twice":
                send(reply)
        else:
            sys.exit("table-test: unexpected message %d" % mtype)


if data.get("protocol") == "imsg":
    run_imsg()
else:
    run_line()
