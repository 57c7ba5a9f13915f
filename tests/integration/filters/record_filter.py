#!/usr/bin/python3
"""A test filter speaking OpenSMTPD's filter protocol on stdin/stdout.

It registers every report event and filter phase, writes each line it reads
to the file named by its first argument (one line each, as received), says
proceed to every request and echoes data lines back unchanged. Options, for
the failure tests:
  --die-handshake        exit before register|ready
  --die-at PHASE         exit when asked for PHASE
  --die-once-at PHASE    likewise, but only the first time (a marker file beside the record)
  --hang-at PHASE        never answer PHASE
  --garbage-at PHASE     answer PHASE with a line that is not the protocol
  --report-at PHASE      write its own report| line, then proceed
  --reject-at PHASE=REPLY   (only for the parameter --reject-param, if given)
  --rewrite-at PHASE=VALUE
  --junk-at PHASE
  --header LINE          add LINE on top of the message (data-line)
  --phases a,b           register only these phases (default: all)
"""
import argparse
import os
import sys

EVENTS = ["link-connect", "link-disconnect", "link-greeting", "link-identify", "link-tls", "link-auth",
          "tx-reset", "tx-begin", "tx-mail", "tx-rcpt", "tx-envelope", "tx-data", "tx-commit", "tx-rollback",
          "protocol-client", "protocol-server", "filter-report", "filter-response", "timeout"]
PHASES = ["connect", "helo", "ehlo", "starttls", "auth", "mail-from", "rcpt-to", "data", "data-line", "rset",
          "quit", "noop", "commit"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("record")
    ap.add_argument("--die-handshake", action="store_true")
    ap.add_argument("--die-at")
    ap.add_argument("--die-once-at")
    ap.add_argument("--hang-at")
    ap.add_argument("--garbage-at")
    ap.add_argument("--report-at")
    ap.add_argument("--reject-at")
    ap.add_argument("--reject-param")
    ap.add_argument("--rewrite-at")
    ap.add_argument("--junk-at")
    ap.add_argument("--header")
    ap.add_argument("--phases")
    ap.add_argument("--events")
    a = ap.parse_args()
    rec = open(a.record, "a", buffering=1)
    out = sys.stdout
    reject_phase, reject_reply = (a.reject_at.split("=", 1) if a.reject_at else (None, None))
    rewrite_phase, rewrite_value = (a.rewrite_at.split("=", 1) if a.rewrite_at else (None, None))

    def send(line):
        out.write(line + "\n")
        out.flush()

    for line in sys.stdin:
        line = line.rstrip("\n")
        rec.write(line + "\n")
        if line == "config|ready":
            break
    if a.die_handshake:
        sys.stderr.write("record_filter: dying in the handshake, as asked\n")
        sys.exit(3)
    for e in (a.events.split(",") if a.events else EVENTS):
        send("register|report|smtp-in|" + e)
    for p in (a.phases.split(",") if a.phases else PHASES):
        send("register|filter|smtp-in|" + p)
    send("register|ready")
    headers_sent = set()
    for line in sys.stdin:
        line = line.rstrip("\n")
        rec.write(line + "\n")
        f = line.split("|")
        if f[0] != "filter":
            continue
        phase, sid, token = f[4], f[5], f[6]
        if phase == a.die_at:
            sys.exit(4)
        if phase == a.die_once_at and not os.path.exists(a.record + ".died"):
            open(a.record + ".died", "w").close()
            sys.exit(4)
        if phase == a.hang_at:
            continue
        if phase == a.garbage_at:
            send("this is not the protocol")
            continue
        if phase == "data-line":
            data = line.split("|", 7)[7]
            if a.header and sid not in headers_sent:
                headers_sent.add(sid)
                send("filter-dataline|%s|%s|%s" % (sid, token, a.header))
            if data == ".":
                headers_sent.discard(sid)
            send("filter-dataline|%s|%s|%s" % (sid, token, data))
            continue
        if phase == a.report_at:
            send("report|1700000000.000000|smtp-in|%s|own report" % sid)
        param = line.split("|", 7)[7] if len(f) > 7 else ""
        if phase == reject_phase and (a.reject_param is None or param == a.reject_param):
            send("filter-result|%s|%s|reject|%s" % (sid, token, reject_reply))
            continue
        if phase == rewrite_phase:
            send("filter-result|%s|%s|rewrite|%s" % (sid, token, rewrite_value))
            continue
        if phase == a.junk_at:
            send("filter-result|%s|%s|junk" % (sid, token))
            continue
        send("filter-result|%s|%s|proceed" % (sid, token))


if __name__ == "__main__":
    main()
