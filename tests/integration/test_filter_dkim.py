"""postern's own filter-dkim (issue 12) on a real posternd: RSA, Ed25519,
both at once, two domains with their own keys from a key table, a message
with a '|' in a header and dot-stuffed lines intact, and a key that cannot
be used stopping the filter at start with the file and the reason. Every
signature is checked by Debian's python3-dkim against the test's own DNS
records (test_filter_debian.dkim_verify), and a changed copy must fail.
"""

import os
import re
import shutil
import unittest

import postern
from test_filter_debian import (MAILDIR, SYSTEM_PYTHON, check_prerequisites, delivered, dkim_verify, headers_of,
                                make_ed25519_key, make_rsa_key, message, readable_by_filters, tag, transaction,
                                wire_form)

FILTER = os.path.join(postern.BUILD_DIR, "filter-dkim")


def install_filter(folder):
    """The daemon runs the filter as _postern, which may not reach the build
    folder (a checkout in a 0700 home): each daemon gets its own copy."""
    shutil.copy(FILTER, os.path.join(folder, "filter-dkim"))
    os.chmod(os.path.join(folder, "filter-dkim"), 0o755)


def signatures(data):
    return [v for n, v in headers_of(data) if n.lower() == "dkim-signature"]


def without_first_signature(data):
    """The delivered copy with its first DKIM-Signature field (and its folded
    lines) taken out."""
    lines = data.split(b"\n")
    start = next(i for i, l in enumerate(lines) if l.lower().startswith(b"dkim-signature:"))
    end = start + 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\n".join(lines[:start] + lines[end:])


class FilterDkim(unittest.TestCase):
    def setUp(self):
        check_prerequisites(self, programs=[FILTER, SYSTEM_PYTHON], python_modules=["dkim", "nacl"])

    def sign(self, name, prepare, args, msg, sender_domain="example.org"):
        """One message through `filter-dkim ARGS` on a listener; the delivered copy."""
        def prep(folder):
            install_filter(folder)
            prepare(folder)

        with postern.Daemon(MAILDIR, name=name, prepare=prep,
                            before_listen=f'filter "dkim" proc-exec "@DIR@/filter-dkim {args}"\n',
                            listen_options='filter "dkim"') as d:
            self.assertTrue(d.wait_log(r"filter ready filter=dkim pid=\d+"), d.log())
            c, reply = transaction(d.port, msg)
            with c:
                self.assertTrue(reply.startswith("250 "), reply)
            [data] = delivered(d)
            self.assertTrue(data.endswith(msg.replace("\r\n", "\n").encode()), data)
            return data

    def check_verifies(self, data, records):
        ok, why = dkim_verify(wire_form(data, strip_delivery_headers=True), records)
        self.assertTrue(ok, why)
        ok, why = dkim_verify(wire_form(data.replace(b"last line", b"LAST line")), records)
        self.assertFalse(ok, f"a changed body still verifies: {why}")

    def test_rsa(self):
        records = {}
        prep = lambda f: records.update({"sel._domainkey.example.org": make_rsa_key(f, "rsa.key")})  # noqa: E731
        data = self.sign("dkim-own-rsa", prep, "-d example.org -s sel -k @DIR@/rsa.key",
                         message("rsa", ["first line", "last line"]))
        [sig] = signatures(data)
        self.assertEqual(tag(sig, "a"), "rsa-sha256")
        self.assertEqual(tag(sig, "c"), "relaxed/relaxed")
        # From is oversigned: listed once more than it is present.
        self.assertEqual(tag(sig, "h").lower().split(":").count("from"), 2, sig)
        self.check_verifies(data, records)

    def test_ed25519_simple(self):
        records = {}
        prep = lambda f: records.update({"ed._domainkey.example.org": make_ed25519_key(f, "ed.key")})  # noqa: E731
        data = self.sign("dkim-own-ed25519", prep, "-c simple/simple -d example.org -s ed -k @DIR@/ed.key",
                         message("ed25519", ["first line", "last line"]))
        [sig] = signatures(data)
        self.assertEqual(tag(sig, "a"), "ed25519-sha256")
        self.assertEqual(tag(sig, "c"), "simple/simple")
        self.check_verifies(data, records)

    def test_dual_and_two_domains_from_a_key_table(self):
        records = {}

        def prep(folder):
            records["rsa._domainkey.example.org"] = make_rsa_key(folder, "org-rsa.key")
            records["ed._domainkey.example.org"] = make_ed25519_key(folder, "org-ed.key")
            records["mail._domainkey.example.net"] = make_rsa_key(folder, "net.key")
            with open(os.path.join(folder, "keys"), "w") as f:
                f.write("# domain selector key\n"
                        "example.org rsa org-rsa.key\n"
                        "example.org ed  org-ed.key\n"
                        "example.net mail net.key\n")
            readable_by_filters(os.path.join(folder, "keys"))

        data = self.sign("dkim-own-table", prep, "-t @DIR@/keys",
                         message("two signatures", ["first line", "last line"]))
        sigs = signatures(data)
        self.assertEqual(sorted(tag(s, "a") for s in sigs), ["ed25519-sha256", "rsa-sha256"])
        self.assertEqual({tag(s, "d") for s in sigs}, {"example.org"})
        self.check_verifies(data, records)
        # python3-dkim checks the first signature: with that one removed, the
        # other verifies on its own key alone.
        second = without_first_signature(data)
        self.assertEqual(len(signatures(second)), 1)
        other = tag(signatures(second)[0], "s")
        ok, why = dkim_verify(wire_form(second, strip_delivery_headers=True),
                              {f"{other}._domainkey.example.org": records[f"{other}._domainkey.example.org"]})
        self.assertTrue(ok, why)

        net = message("from example.net", ["first line", "last line"]).replace(
            "From: Sender <sender@example.org>", "From: Other <other@example.net>")
        data = self.sign("dkim-own-table-net", prep, "-t @DIR@/keys", net)
        [sig] = signatures(data)
        self.assertEqual((tag(sig, "d"), tag(sig, "s")), ("example.net", "mail"))
        self.check_verifies(data, records)

    def test_pipe_and_dots_survive(self):
        records = {}
        prep = lambda f: records.update({"sel._domainkey.example.org": make_rsa_key(f, "rsa.key")})  # noqa: E731
        msg = message("a | pipe in the subject", [".a dot", "..two dots", "a | pipe", "", "last line"],
                      extra_headers=["X-Note: left|right"])
        data = self.sign("dkim-own-pipe", prep, "-d example.org -s sel -k @DIR@/rsa.key", msg)
        self.assertIn(b"\nSubject: a | pipe in the subject\n", data)
        self.assertIn(b"\nX-Note: left|right\n", data)
        self.assertIn(b"\n.a dot\n..two dots\n", data)
        self.check_verifies(data, records)

    def test_a_bad_key_stops_it_at_start(self):
        def prep(folder):
            install_filter(folder)
            with open(os.path.join(folder, "bad.key"), "w") as f:
                f.write("this is not a key\n")
            readable_by_filters(os.path.join(folder, "bad.key"))

        with postern.Daemon(MAILDIR, name="dkim-own-badkey", prepare=prep,
                            before_listen='filter "dkim" proc-exec "@DIR@/filter-dkim -d example.org -s sel '
                                          '-k @DIR@/bad.key"\n',
                            listen_options='filter "dkim"') as d:
            self.assertTrue(d.wait_log(r'filter stderr filter=dkim line=".*bad\.key: not a PEM private key'),
                            d.log())
            self.assertTrue(d.wait_log(r"filter failed; restarting it filter=dkim"), d.log())
            c = postern.RawClient(d.port)
            with c:
                self.assertEqual(c.banner[0], 421)


if __name__ == "__main__":
    postern.run_tests()
