"""`admd "authserv-id"` (issue 16): the name filters are given in their
handshake as config|admd, which they write into Authentication-Results.
A filter that records what it was told shows it: the configured name, or
the server's name without the directive.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

# Records the config|admd line of the handshake, registers nothing, then waits.
FILTER = """import sys
for line in sys.stdin:
    line = line.rstrip("\\n")
    if line.startswith("config|admd|"):
        with open(sys.argv[1], "w") as f:
            f.write(line[len("config|admd|"):])
    if line == "config|ready":
        print("register|ready", flush=True)
        break
for line in sys.stdin:
    pass
"""

CONFIG = """
action "local" maildir "@DIR@/mail/%{rcpt.user}" user root
match from any for local action "local"
"""


def prepare(folder):
    with open(os.path.join(folder, "record-admd.py"), "w") as f:
        f.write(FILTER)
    os.chmod(os.path.join(folder, "record-admd.py"), 0o755)
    out = os.path.join(folder, "out")
    os.makedirs(out)
    os.chmod(out, 0o777)  # the filter runs as the unprivileged user


FILTER_LINE = 'filter "rec" proc-exec "/usr/bin/python3 @DIR@/record-admd.py @DIR@/out/admd"\n'


class Admd(unittest.TestCase):
    def recorded(self, before_listen):
        with postern.Daemon(CONFIG, name="admd", prepare=prepare, before_listen=before_listen,
                            listen_options='filter "rec"') as d:
            self.assertTrue(d.wait_log(r"filter ready filter=rec pid=\d+"), d.log())
            path = d.path("out", "admd")
            self.assertTrue(postern.wait_until(lambda: os.path.exists(path), 10), d.log())
            with open(path) as f:
                return f.read(), d.hostname

    def test_the_configured_authserv_id_goes_to_filters(self):
        admd, _ = self.recorded('admd "auth.example.org"\n' + FILTER_LINE)
        self.assertEqual(admd, "auth.example.org")

    def test_without_admd_filters_get_the_server_name(self):
        admd, hostname = self.recorded(FILTER_LINE)
        self.assertTrue(hostname)
        self.assertEqual(admd, hostname)


if __name__ == "__main__":
    postern.run_tests()
