#!/usr/bin/env python3
"""Checks a delivery status notification built by postern (core/bounce/dsn.cpp)
with Python's own MIME parser, independently of the C++ code that wrote it.

usage: check_dsn.py FILE KIND [options]
  KIND                      failed | delayed | delivered
  --to ADDR                 the To: header must be exactly <ADDR>
  --returned full|headers   third part is message/rfc822 | text/rfc822-headers
  --rcpts N                 number of per-recipient groups (default 1)
  --field G:NAME=VALUE      field NAME of group G (0 = per-message) equals VALUE
  --absent G:NAME           group G has no field NAME
  --text-contains S         the human-readable part contains S
  --returned-contains S     the third part contains S
  --returned-lacks S        the third part does not contain S

Exits 0 when every check holds, else 1 with the reasons on stderr.
"""

import argparse
import email
import email.policy
import re
import sys

ACTIONS = {"failed": "failed", "delayed": "delayed", "delivered": "delivered"}
SUBJECTS = {"failed": "Failure", "delayed": "Delay", "delivered": "Success"}
STATUS_CLASS = {"failed": "5", "delayed": "4", "delivered": "2"}


class Checker:
    def __init__(self):
        self.failures = []

    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


def raw_checks(c, raw):
    c.check(b"\r" not in raw, "the message contains a CR (postern stores LF line ends)")
    for n, line in enumerate(raw.split(b"\n"), 1):
        c.check(len(line) <= 998, f"line {n} is {len(line)} octets long (over 998)")


def top_checks(c, msg, raw, args):
    c.check(not msg.defects, f"top-level parse defects: {msg.defects}")
    c.check(msg.get_content_type() == "multipart/report",
            f"Content-Type is {msg.get_content_type()}, not multipart/report")
    c.check(msg.get_param("report-type") == "delivery-status",
            f"report-type is {msg.get_param('report-type')!r}")
    c.check(str(msg.get("Auto-Submitted", "")) == "auto-replied",
            f"Auto-Submitted is {msg.get('Auto-Submitted')!r}")
    c.check(str(msg.get("MIME-Version", "")) == "1.0", "MIME-Version is not 1.0")
    c.check("MAILER-DAEMON@" in str(msg.get("From", "")), f"From is {msg.get('From')!r}")
    want_subject = f"Delivery Status Notification ({SUBJECTS[args.kind]})"
    c.check(str(msg.get("Subject", "")) == want_subject, f"Subject is {msg.get('Subject')!r}")
    c.check(msg.get("Date") is not None, "no Date header")
    c.check(re.fullmatch(r"<[0-9a-f]{32}@[^<>@ ]+>", str(msg.get("Message-ID", ""))) is not None,
            f"Message-ID is {msg.get('Message-ID')!r}")
    c.check(len(msg.get_all("To", [])) == 1, "not exactly one To header")
    if args.to is not None:
        to = msg.get("To")
        addrs = [a.addr_spec for a in to.addresses] if to is not None else []
        c.check(addrs == [args.to], f"To addresses are {addrs}, want [{args.to!r}]")
        c.check(f"\nTo: <{args.to}>\n".encode() in b"\n" + raw, f"no header line To: <{args.to}>")
    for name in ("Bcc", "Cc"):
        c.check(msg.get(name) is None, f"an injected {name} header reached the top level")


def field_of(group, name):
    values = group.get_all(name, [])
    return None if not values else str(values[0])


def status_checks(c, part, args):
    c.check(part.get_content_type() == "message/delivery-status",
            f"second part is {part.get_content_type()}")
    groups = part.get_payload()
    if not c.check(isinstance(groups, list), "delivery-status payload is not a list of groups"):
        return
    c.check(len(groups) == 1 + args.rcpts,
            f"{len(groups) - 1} per-recipient groups, want {args.rcpts}")
    if not groups:
        return
    c.check((field_of(groups[0], "Reporting-MTA") or "").startswith("dns; "),
            f"Reporting-MTA is {field_of(groups[0], 'Reporting-MTA')!r}")
    c.check(field_of(groups[0], "Final-Recipient") is None, "per-message group has a Final-Recipient")
    for i, g in enumerate(groups[1:], 1):
        c.check(not g.defects, f"group {i} parse defects: {g.defects}")
        c.check((field_of(g, "Final-Recipient") or "").startswith("rfc822; "),
                f"group {i} Final-Recipient is {field_of(g, 'Final-Recipient')!r}")
        c.check(field_of(g, "Action") == ACTIONS[args.kind], f"group {i} Action is {field_of(g, 'Action')!r}")
        status = field_of(g, "Status") or ""
        c.check(re.fullmatch(STATUS_CLASS[args.kind] + r"\.\d{1,3}\.\d{1,3}", status) is not None,
                f"group {i} Status is {status!r}")
        retry = field_of(g, "Will-Retry-Until")
        if args.kind == "delayed":
            c.check(retry is not None, f"group {i} lacks Will-Retry-Until")
        else:
            c.check(retry is None, f"group {i} has Will-Retry-Until in a {args.kind} report")
        for name in ("Bcc", "Cc", "To"):
            c.check(g.get(name) is None, f"an injected {name} field reached group {i}")
    for spec in args.field:
        where, _, rest = spec.partition(":")
        name, _, value = rest.partition("=")
        g = int(where)
        got = field_of(groups[g], name) if g < len(groups) else None
        c.check(got == value, f"group {g} {name} is {got!r}, want {value!r}")
    for spec in args.absent:
        where, _, name = spec.partition(":")
        g = int(where)
        got = field_of(groups[g], name) if g < len(groups) else None
        c.check(got is None, f"group {g} has {name}: {got!r}, want none")


def returned_text(part):
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()[0]
        return inner.as_bytes(policy=email.policy.default.clone(linesep="\n")).decode("utf-8", "replace")
    return part.get_content()


def returned_checks(c, part, args):
    want = "message/rfc822" if args.returned == "full" else "text/rfc822-headers"
    if not c.check(part.get_content_type() == want, f"third part is {part.get_content_type()}, want {want}"):
        return
    text = returned_text(part)
    if args.returned == "headers":
        c.check("\n\n" not in text.rstrip("\n"), "text/rfc822-headers part holds more than a header section")
    for s in args.returned_contains:
        c.check(s in text, f"third part lacks {s!r}")
    for s in args.returned_lacks:
        c.check(s not in text, f"third part contains {s!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("kind", choices=sorted(ACTIONS))
    ap.add_argument("--to")
    ap.add_argument("--returned", choices=["full", "headers"], default="headers")
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--field", action="append", default=[])
    ap.add_argument("--absent", action="append", default=[])
    ap.add_argument("--text-contains", action="append", default=[])
    ap.add_argument("--returned-contains", action="append", default=[])
    ap.add_argument("--returned-lacks", action="append", default=[])
    args = ap.parse_args()

    with open(args.file, "rb") as f:
        raw = f.read()
    with open(args.file, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)

    c = Checker()
    raw_checks(c, raw)
    top_checks(c, msg, raw, args)
    parts = msg.get_payload() if msg.is_multipart() else []
    if c.check(len(parts) == 3, f"{len(parts)} MIME parts, want 3"):
        c.check(parts[0].get_content_type() == "text/plain", f"first part is {parts[0].get_content_type()}")
        text = parts[0].get_content()
        for s in args.text_contains:
            c.check(s in text, f"text part lacks {s!r}")
        status_checks(c, parts[1], args)
        returned_checks(c, parts[2], args)

    for f in c.failures:
        print(f"check_dsn: {args.file}: {f}", file=sys.stderr)
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
