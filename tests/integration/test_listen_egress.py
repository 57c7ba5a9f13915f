"""`listen on egress` and `listen on all` in a network namespace of their own.

The test builds a namespace for the server and one for the client, joined
by a veth pair; the server's end holds 203.0.113.2 and fd00:16::2 and the
default routes (IPv4 and IPv6) through the client's end. A second veth pair
inside the server namespace holds 198.51.100.5 and no default route. Then:

  - `listen on egress` answers on 203.0.113.2 and fd00:16::2 (from the client
    namespace) and on nothing else: not on 198.51.100.5, not on 127.0.0.1;
  - `listen on all` answers on every address, 127.0.0.1 and 198.51.100.5 too;
  - `posternd -n` refuses `listen on egress` in a namespace without a default
    route, and `listen on lo0`, each with its exact message.

Needs root and iproute2's `ip netns`; skipped otherwise.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from netns import inside  # noqa: E402

SERVER_IP, CLIENT_IP, OTHER_IP = "203.0.113.2", "203.0.113.1", "198.51.100.5"
SERVER_IP6, CLIENT_IP6 = "fd00:16::2", "fd00:16::1"
CMD_TIMEOUT = 30



def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)


def ip(*args):
    r = run(["ip", *args])
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def why_not():
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not shutil.which("ip"):
        return "needs iproute2's ip"
    probe = f"ptegress{os.getpid()}"
    r = run(["ip", "netns", "add", probe])
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    run(["ip", "netns", "del", probe])
    return None


WHY_NOT = why_not()


def banner(ns, address, port=25):
    """The first line the server sends on (address, port) seen from ns, or
    the error that connecting met."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with inside(ns):
        s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect((address, port))
        data = b""
        while b"\n" not in data and len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
        return data.decode("latin-1").split("\r\n")[0]
    except OSError as e:
        return f"error: {e.strerror or e}"
    finally:
        s.close()


class NetnsDaemon(postern.Daemon):
    """A posternd run with `ip netns exec NS`; its config gives the listen line."""

    def __init__(self, ns, probe, config_text, name):
        super().__init__(config_text, name=name)
        self.ns, self.probe = ns, probe

    def config_head(self):
        return (f'queue path "{self.spool}"\n'
                f'pidfile "{self.path("posternd.pid")}"\n'
                f'control socket "{self.path("run", "control.sock")}"\n'
                f'mbox path "{self.mbox_dir}"\n')

    def _start_with_free_port(self):
        self.port = self.probe[1]
        self._write_config()
        self._spawn()

    def _spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, postern.POSTERND, "-d", "-f",
                                          self.conf_path], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.dir, start_new_session=True)
        self.session = self.proc.pid  # `ip netns exec` execs: this is posternd itself
        self._wait_ready()

    def _connect(self, timeout):
        with inside(self.ns):
            return socket.create_connection(self.probe, timeout=timeout)


RULES = 'action "d" mbox\nmatch from any for local action "d"\n'


@unittest.skipIf(WHY_NOT, WHY_NOT)
class ListenEgress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = f"pe{os.getpid()}"
        cls.server_ns, cls.client_ns, cls.bare_ns = f"{base}-s", f"{base}-c", f"{base}-b"
        cls.made = []
        try:
            cls.build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def build(cls):
        tag = f"{os.getpid() % 10**7}"
        for ns in (cls.server_ns, cls.client_ns, cls.bare_ns):
            ip("netns", "add", ns)
            cls.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            # The resolver of `ip netns exec`: nothing answers on 127.0.0.1
            # there, so that the reverse lookups fail at once instead of
            # waiting for a name server the namespace cannot reach.
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
                f.write("nameserver 127.0.0.1\n")
        s_if, c_if, o_if, p_if = f"e{tag}s", f"e{tag}c", f"e{tag}o", f"e{tag}p"
        ip("link", "add", s_if, "netns", cls.server_ns, "type", "veth", "peer", "name", c_if, "netns", cls.client_ns)
        ip("-n", cls.server_ns, "addr", "add", f"{SERVER_IP}/24", "dev", s_if)
        ip("-n", cls.server_ns, "addr", "add", f"{SERVER_IP6}/64", "dev", s_if, "nodad")
        ip("-n", cls.client_ns, "addr", "add", f"{CLIENT_IP}/24", "dev", c_if)
        ip("-n", cls.client_ns, "addr", "add", f"{CLIENT_IP6}/64", "dev", c_if, "nodad")
        for ns, ifname in ((cls.server_ns, s_if), (cls.client_ns, c_if)):
            ip("-n", ns, "link", "set", ifname, "up")
        ip("-n", cls.server_ns, "route", "add", "default", "via", CLIENT_IP)
        ip("-n", cls.server_ns, "-6", "route", "add", "default", "via", CLIENT_IP6)
        # An interface with an address and no default route, inside the server's namespace.
        ip("-n", cls.server_ns, "link", "add", o_if, "type", "veth", "peer", "name", p_if)
        ip("-n", cls.server_ns, "addr", "add", f"{OTHER_IP}/24", "dev", o_if)
        for ifname in (o_if, p_if):
            ip("-n", cls.server_ns, "link", "set", ifname, "up")
        # The bare namespace: an address, no default route.
        ip("-n", cls.bare_ns, "link", "add", o_if, "type", "veth", "peer", "name", p_if)
        ip("-n", cls.bare_ns, "addr", "add", f"{OTHER_IP}/24", "dev", o_if)
        for ifname in (o_if, p_if):
            ip("-n", cls.bare_ns, "link", "set", ifname, "up")

    @classmethod
    def tearDownClass(cls):
        for ns in cls.made:
            run(["ip", "netns", "del", ns])  # takes its interfaces with it
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir("/etc/netns")  # only if empty: it may have been there before

    def check(self, ns, config):
        """posternd -n inside ns: (exit code, output)."""
        path = os.path.join(self.tmp, "check.conf")
        with open(path, "w") as f:
            f.write(f'queue path "{self.tmp}/spool"\n' + config + RULES)
        r = run(["ip", "netns", "exec", ns, postern.POSTERND, "-n", "-f", path])
        return r.returncode, (r.stdout + r.stderr).strip()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="egress-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_egress_listens_on_the_default_route_interfaces_only(self):
        with NetnsDaemon(self.server_ns, (SERVER_IP, 25), "listen on egress port 25\n" + RULES, "egress") as d:
            self.assertRegex(banner(self.client_ns, SERVER_IP), r"^220 \S+ ESMTP postern$", d.log())
            self.assertRegex(banner(self.client_ns, SERVER_IP6), r"^220 \S+ ESMTP postern$", d.log())
            self.assertEqual(banner(self.server_ns, OTHER_IP), "error: Connection refused")
            self.assertEqual(banner(self.server_ns, "127.0.0.1"), "error: Connection refused")

    def test_egress_inet6_takes_only_the_ipv6_address(self):
        with NetnsDaemon(self.server_ns, (SERVER_IP6, 25), "listen on egress inet6 port 25\n" + RULES, "egress6"):
            self.assertRegex(banner(self.client_ns, SERVER_IP6), r"^220 ")
            self.assertEqual(banner(self.client_ns, SERVER_IP), "error: Connection refused")

    def test_all_listens_everywhere(self):
        with NetnsDaemon(self.server_ns, (SERVER_IP, 25), "listen on all port 25\n" + RULES, "all") as d:
            for ns, address in ((self.client_ns, SERVER_IP), (self.server_ns, OTHER_IP),
                                (self.server_ns, "127.0.0.1"), (self.server_ns, "::1")):
                self.assertRegex(banner(ns, address), r"^220 ", f"{address}: {d.log()}")

    def test_check_accepts_egress_with_a_default_route(self):
        self.assertEqual(self.check(self.server_ns, "listen on egress\n"), (0, "configuration OK"))

    def test_check_refuses_egress_without_a_default_route(self):
        rc, out = self.check(self.bare_ns, "listen on egress\n")
        self.assertEqual(rc, 1, out)
        self.assertEqual(out.splitlines()[0],
                         f"{self.tmp}/check.conf:2:1: listen on egress: no interface holds a default route here, "
                         "so the group 'egress' (the interfaces of the IPv4 and IPv6 default routes) is empty; add "
                         "a default route before posternd starts, or name an interface (here: lo, "
                         f"e{os.getpid() % 10**7}o)")

    def test_check_refuses_lo0_naming_lo(self):
        rc, out = self.check(self.server_ns, "listen on lo0 port 25\n")
        self.assertEqual(rc, 1, out)
        self.assertEqual(out.splitlines()[0],
                         f"{self.tmp}/check.conf:2:1: listen on lo0: no interface 'lo0' on this host (the loopback "
                         "interface's name on the BSDs); on Linux it is 'lo': listen on lo, or on localhost")

    def test_check_refuses_em0_naming_the_one_interface(self):
        rc, out = self.check(self.bare_ns, "listen on em0 port 25\n")
        self.assertEqual(rc, 1, out)
        self.assertEqual(out.splitlines()[0],
                         f"{self.tmp}/check.conf:2:1: listen on em0: no interface 'em0' on this host ('em' is a BSD "
                         "network driver; Linux names interfaces otherwise, such as eth0 or enp1s0): here it is "
                         f"'e{os.getpid() % 10**7}o': listen on e{os.getpid() % 10**7}o")


if __name__ == "__main__":
    postern.run_tests()
