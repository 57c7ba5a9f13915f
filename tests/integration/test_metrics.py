"""The Prometheus endpoint, end to end: `metrics listen on 127.0.0.1 port P`
serves /metrics, scraped with curl and parsed with Debian's
python3-prometheus-client (its own text-format parser, not ours).

Checks the figures move with what the daemon did: a session, a delivered
message, a refused recipient (550), a table lookup, the queue after a
paused delivery; that the endpoint is off without the directive; and that
another path is 404.
"""

import os
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-prometheus-client lives

# Run by the system python: the exposition text on stdin, every sample as
# [name, labels, value] in JSON on stdout, as prometheus_client reads them.
PARSE_SCRIPT = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"""


def have_parser():
    return subprocess.run([SYSTEM_PYTHON, "-c", "import prometheus_client"], capture_output=True).returncode == 0

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")


def prepare(folder):
    with open(os.path.join(folder, "aliases"), "w") as f:
        f.write("postmaster: root\n")
    os.chmod(os.path.join(folder, "aliases"), 0o644)


def scrape(port, path="/metrics"):
    r = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, text=True, timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def samples(text):
    """{(name, frozenset(labels)): value} of every sample, as the real parser reads them."""
    import json
    r = subprocess.run([SYSTEM_PYTHON, "-c", PARSE_SCRIPT], input=text, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"prometheus_client refused the exposition: {r.stderr}\n{text}")
    return {(name, frozenset(labels.items())): value for name, labels, value in json.loads(r.stdout)}


@unittest.skipUnless(have_parser(), "needs Debian's python3-prometheus-client")
class Metrics(unittest.TestCase):
    def setUp(self):
        self.mport = postern.free_port()
        config = (f"metrics listen on 127.0.0.1 port {self.mport}\n"
                  "table aliases file:@DIR@/aliases\n"
                  'action "local" mbox alias <aliases>\n'
                  'match from local for local action "local"\n')
        self.d = postern.Daemon(config, name="metrics", prepare=prepare)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def test_scrape_follows_the_traffic(self):
        code, body = scrape(self.mport)
        self.assertEqual(code, 200, body)
        before = samples(body)
        self.assertEqual(before[("postern_sessions_current", frozenset())], 0)

        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("sender@example.org")
            self.assertEqual(s.rcpt("postmaster@localhost")[0], 250)
            self.assertEqual(s.rcpt("someone@elsewhere.example")[0], 550)
            s.data("Subject: m\r\n\r\nbody\r\n")
        self.assertTrue(self.d.wait_log(r"mda delivery .*result=Ok"), self.d.log())

        after = samples(scrape(self.mport)[1])

        def grew(name, labels=()):
            key = (name, frozenset(labels))
            return after[key] - before.get(key, 0)
        # The harness's own readiness probe is a session too: count what this test did.
        self.assertEqual(grew("postern_sessions_total"), 1)
        self.assertEqual(after[("postern_sessions_current", frozenset())], 0)
        self.assertEqual(grew("postern_messages_accepted_total"), 1)
        self.assertEqual(grew("postern_recipients_refused_total", {("code", "550")}), 1)
        self.assertEqual(grew("postern_deliveries_total", {("action", "local"), ("result", "Ok")}), 1)
        self.assertGreaterEqual(grew("postern_table_lookups_total", {("table", "aliases")}), 1)
        self.assertEqual(grew("postern_queue_wait_seconds_count"), 1)
        self.assertEqual(grew("postern_delivery_agent_seconds_count", {("kind", "local")}), 1)
        self.assertEqual(after[("postern_queue_envelopes", frozenset())], 0)

    def test_queue_gauges_while_delivery_is_paused(self):
        subprocess.run([POSTERNCTL, "-s", self.d.path("run", "control.sock"), "pause", "mda"], check=True,
                       capture_output=True, timeout=20)
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=10) as s:
            s.sendmail("sender@example.org", ["root@localhost"], "Subject: held\r\n\r\nx\r\n")
        self.assertTrue(postern.wait_until(
            lambda: samples(scrape(self.mport)[1]).get(("postern_queue_envelopes", frozenset())) == 1, 10))
        self.assertTrue(postern.wait_until(
            lambda: samples(scrape(self.mport)[1])[("postern_queue_oldest_envelope_age_seconds", frozenset())] >= 1,
            10))

    def test_other_paths_are_not_found(self):
        self.assertEqual(scrape(self.mport, "/")[0], 404)


class MetricsOff(unittest.TestCase):
    def test_no_directive_no_endpoint(self):
        port = postern.free_port()
        with postern.Daemon('action "local" mbox\nmatch from local for local action "local"\n', name="nometrics") as d:
            self.assertTrue(d.running())
            code, _ = scrape(port)
            self.assertEqual(code, 0)  # nothing listens: curl gets no HTTP answer
            self.assertNotIn("metrics listening", d.log())


if __name__ == "__main__":
    postern.run_tests()
