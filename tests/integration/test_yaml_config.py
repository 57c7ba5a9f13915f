"""The YAML form of the configuration (postern.yaml(5)), end to end.

YamlDelivery: posternd started on a postern.yaml (chosen by its extension)
receives a message over SMTP and delivers it to the maildir the YAML names;
a broken postern.yaml is refused by -n, at start-up and by a reload with
FILE:LINE:COL pointing into the YAML; a reload reads the changed YAML.

Conversion: `posternd -n -P yaml` on an smtpd.conf that uses a macro, an
include and a pre-6.4 rule prints YAML that `posternd -n` accepts as it is,
and that prints back (`-P conf`) to the same configuration as the original;
`-P conf` of the original reads back to itself.
"""

import os
import re
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

YAML = """\
# postern.yaml for the test: what postern.Daemon's smtpd.conf head says, in YAML
queue:
  path: "@DIR@/spool"
pidfile: "@DIR@/posternd.pid"
control-socket: "@DIR@/run/control.sock"
mbox-path: "@DIR@/mbox"
listeners:
  - listen-on: 127.0.0.1
    port: @PORT@
actions:
  local:
    method: maildir
    path: "@DIR@/mail/%{rcpt.user}"
    user: root
matches:
  - from: local
    for: local
    action: local
"""

DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def posternd(*args):
    r = subprocess.run([postern.POSTERND, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


class YamlDaemon(postern.Daemon):
    """postern.Daemon on a postern.yaml instead of its smtpd.conf."""

    def __init__(self, yaml_text, **kw):
        super().__init__("", **kw)
        self.yaml_text = yaml_text

    @property
    def conf_path(self):
        return os.path.join(self.dir, "postern.yaml")

    def _write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.yaml_text.replace("@DIR@", self.dir).replace("@PORT@", str(self.port)))
        os.chmod(self.conf_path, 0o644)


class YamlDelivery(unittest.TestCase):
    def test_delivers_to_the_maildir_the_yaml_names(self):
        with YamlDaemon(YAML, name="yaml") as d:
            message = ("From: bob@example.net\r\nTo: alice@localhost\r\nSubject: yaml\r\n\r\n"
                       "configured in YAML\r\n")
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
                self.assertEqual(s.ehlo()[0], 250)
                self.assertEqual(s.mail("bob@example.net"), (250, b"2.1.0 Ok"))
                self.assertEqual(s.rcpt("alice@localhost")[0], 250)
                code, text = s.data(message.encode())
                self.assertEqual(code, 250, text)
            files = d.wait_files(d.path("mail", "alice"), 1)
            self.assertEqual(len(files), 1, d.log())
            data = postern.read_bytes(files[0]).decode()
            self.assertTrue(data.startswith("Return-Path: <bob@example.net>\nDelivered-To: alice@localhost\n"),
                            data[:200])
            self.assertTrue(data.endswith("Subject: yaml\n\nconfigured in YAML\n"), data)
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())

    def test_a_broken_yaml_is_refused_at_its_line_and_column(self):
        with tempfile.TemporaryDirectory(prefix="yamlcheck-") as tmp:
            path = os.path.join(tmp, "postern.yml")
            with open(path, "w") as f:
                f.write(YAML.replace("@DIR@", tmp).replace("@PORT@", "2525")
                        .replace("    user: root\n", "    user: root\n    junk: maybe\n")
                        .replace("    action: local\n", "    action: lcoal\n"))
            rc, out, err = posternd("-n", "-f", path)
            self.assertEqual((rc, out), (1, ""), err)
            # The shape first: the boolean, at its value (line 15, column 11).
            self.assertEqual(err, f"{path}:15:11: expected true or false for 'junk' in the action, found 'maybe'\n")
            with open(path) as f:
                text = f.read().replace("    junk: maybe\n", "")
            with open(path, "w") as f:
                f.write(text)
            rc, out, err = posternd("-n", "-f", path)
            self.assertEqual(rc, 1, err)
            self.assertEqual(err, f"{path}:18:13: unknown action 'lcoal': declare it with 'action lcoal ...' "
                                  "before this line\n")
            # Start-up refuses it the same way, and leaves nothing running.
            rc, out, err = posternd("-d", "-f", path)
            self.assertEqual(rc, 1, err)
            self.assertIn(f"{path}:18:13: unknown action 'lcoal'", err)

    @unittest.skipUnless(os.geteuid() == 0, "needs root: the reload is done by the root parent")
    def test_reload_reads_the_yaml_again(self):
        with YamlDaemon(YAML, name="yaml-reload") as d:
            def send(subject):
                with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
                    return s.sendmail("bob@example.net", ["alice@localhost"], f"Subject: {subject}\r\n\r\nx\r\n")

            # A broken file is refused at its line and column; the running configuration stays.
            d.yaml_text = YAML.replace("    user: root\n", "    user: root\n    wrapper: nope\n")
            d._write_config()
            r = subprocess.run([os.path.join(postern.BUILD_DIR, "posternctl"), "-s", d.path("run", "control.sock"),
                                "reload"], capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(f"{d.conf_path}:15:14: no mda wrapper named 'nope'", r.stderr)
            self.assertEqual(send("before"), {})
            self.assertEqual(len(d.wait_files(d.path("mail", "alice"), 1)), 1, d.log())
            # A good one takes effect: the maildir moves.
            d.yaml_text = YAML.replace("/mail/%{rcpt.user}", "/mail2/%{rcpt.user}")
            d._write_config()
            self.assertIn("configuration reloaded", postern.posternctl(d, "reload"))
            self.assertEqual(send("after"), {})
            files = d.wait_files(d.path("mail2", "alice"), 1, timeout=20)
            self.assertEqual(len(files), 1, d.log())
            self.assertIn(b"Subject: after", postern.read_bytes(files[0]))


CONF = """\
# a conf with what -P must fold in: a macro, an include, a pre-6.4 rule
dom = "example.org"
include "@DIR@/tables.conf"
listen on 127.0.0.1 port 2525
listen on 127.0.0.1 port 2587 tag "sub"
action "local" maildir "@DIR@/mail/%{rcpt.user}" user root
match from any for domain $dom action "local"
match from local tag "sub" for any reject
accept from local for local alias <aliases> deliver to mbox
"""

TABLES = 'table aliases file:@DIR@/aliases\n'


class Conversion(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="yamlconv-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        os.chmod(self.dir, 0o755)
        self.write("aliases", "root: alice\n")
        self.write("tables.conf", TABLES.replace("@DIR@", self.dir))
        self.conf = self.write("smtpd.conf", CONF.replace("@DIR@", self.dir) +
                               f'queue path "{self.dir}/spool"\ncontrol socket "{self.dir}/run/control.sock"\n'
                               f'mbox path "{self.dir}/mbox"\n')

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def test_conf_to_yaml_and_back(self):
        rc, out, err = posternd("-n", "-f", self.conf)
        self.assertEqual((rc, out), (0, "configuration OK\n"), err)
        rc, yaml_text, err = posternd("-n", "-P", "yaml", "-f", self.conf)
        self.assertEqual(rc, 0, err)
        self.assertIn("pre-6.4 grammar", err)  # the warnings still go to stderr
        # Folded in: the macro's value, the included table, the old rule's action.
        self.assertIn("domain: example.org", yaml_text)
        self.assertRegex(yaml_text, r"(?m)^  aliases: \"?file:" + re.escape(self.dir) + r"/aliases\"?$")
        self.assertRegex(yaml_text, r"(?m)^    method: mbox\n    alias: aliases$")
        self.assertNotIn("$dom", yaml_text)
        yaml_path = self.write("postern.yaml", yaml_text)
        rc, out, err = posternd("-n", "-f", yaml_path)
        self.assertEqual((rc, out, err), (0, "configuration OK\n", ""))
        # Both print the same smtpd.conf: the same configuration.
        rc, from_conf, err = posternd("-n", "-P", "conf", "-f", self.conf)
        self.assertEqual(rc, 0, err)
        rc, from_yaml, err = posternd("-n", "-P", "conf", "-f", yaml_path)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(from_yaml, from_conf)
        # And the printed smtpd.conf is a configuration -n accepts, that prints as itself.
        printed = self.write("printed.conf", from_conf)
        rc, out, err = posternd("-n", "-f", printed)
        self.assertEqual((rc, out, err), (0, "configuration OK\n", ""))
        rc, again, err = posternd("-n", "-P", "conf", "-f", printed)
        self.assertEqual((rc, again), (0, from_conf), err)
        # The YAML printed from the YAML is the YAML.
        rc, yaml_again, err = posternd("-n", "-P", "yaml", "-f", yaml_path)
        self.assertEqual((rc, yaml_again), (0, yaml_text), err)

    def test_options(self):
        rc, out, err = posternd("-P", "yaml", "-f", self.conf)
        self.assertEqual((rc, out, err), (1, "", "posternd: -P prints the configuration and needs -n\n"))
        rc, out, err = posternd("-n", "-P", "json", "-f", self.conf)
        self.assertEqual((rc, out, err), (1, "", "posternd: -P needs conf or yaml, got 'json'\n"))
        broken = self.write("broken.conf", "frobnicate\n")
        rc, out, err = posternd("-n", "-P", "yaml", "-f", broken)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn(f"{broken}:1:1: unknown directive 'frobnicate'", err)


if __name__ == "__main__":
    postern.run_tests()
