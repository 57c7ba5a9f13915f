"""Plugins build out of tree, from the installed SDK alone, and run in posternd.

The SDK component of the build is installed (`cmake --install --component
sdk --prefix P`) into a scratch folder: the ABI headers, the header-only
helpers of postern/support/ and the CMake package. Then tests/sdk/, a CMake
project that knows nothing of postern's tree, is configured with
CMAKE_PREFIX_PATH=P and built: a table plugin in plain C and a delivery
plugin in C++ (the `maildir` method). A posternd whose `plugin path` is that
build folder (so the stock plugins are not there to help) must then route
mail by a lookup in the example table and deliver it through the example
plugin, byte for byte; a domain the table does not hold must be refused.

Needs cmake and a C/C++ compiler; the SDK install needs nothing else built.
"""

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('plugin path "{plugins}"\n'
          'table domains example:@DIR@/domains.txt\n'
          'action "l" maildir "@DIR@/mail/%{{rcpt.user}}" user root\n'
          'match from local for domain <domains> action "l"\n')


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


class Sdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cmake = shutil.which("cmake")
        if not cls.cmake:
            raise unittest.SkipTest("cmake not found")
        cls.tmp = tempfile.mkdtemp(prefix="postern-sdk-")
        os.chmod(cls.tmp, 0o755)
        cls.prefix = os.path.join(cls.tmp, "prefix")
        cls.build = os.path.join(cls.tmp, "build")
        run([cls.cmake, "--install", postern.BUILD_DIR, "--component", "sdk", "--prefix", cls.prefix])
        run([cls.cmake, "-S", os.path.join(postern.SOURCE_DIR, "tests", "sdk"), "-B", cls.build,
             f"-DCMAKE_PREFIX_PATH={cls.prefix}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
        run([cls.cmake, "--build", cls.build])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_installed_sdk_is_the_public_headers_only(self):
        include = os.path.join(self.prefix, "include", "postern")
        for h in ("abi.h", "table.h", "delivery.h", "support/fd.hpp", "support/delivery_guard.hpp"):
            self.assertTrue(os.path.isfile(os.path.join(include, h)), h)
        # Nothing of the core's own folders, no binaries, no plugins.
        for root, _, files in os.walk(self.prefix):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), self.prefix)
                self.assertTrue(rel.startswith(("include/postern/", "lib/cmake/postern/", "share/")), rel)

    def test_built_plugins(self):
        for so in ("table-example.so", "delivery-maildir.so"):
            self.assertTrue(os.path.isfile(os.path.join(self.build, so)), os.listdir(self.build))
        # Exactly one exported symbol each: the entry point.
        for so, entry in (("table-example.so", "postern_table_plugin"),
                          ("delivery-maildir.so", "postern_delivery_plugin")):
            nm = shutil.which("nm")  # binutils, which every build needs
            self.assertIsNotNone(nm, "nm not found")
            out = run([nm, "-D", "--defined-only", os.path.join(self.build, so)]).stdout
            # Every defined dynamic symbol (code, data, weak), not only text,
            # but for the standard library's template instances (weak or
            # unique by the C++ ABI, whatever the visibility).
            std = ("_ZNSt", "_ZSt", "_ZZNSt", "_ZNKSt", "_ZZSt")
            names = {line.split()[-1] for line in out.splitlines()
                     if len(line.split()) == 3 and not line.split()[-1].startswith(std)}
            self.assertEqual(names, {entry}, out)

    def prepare(self, folder):
        os.mkdir(os.path.join(folder, "mail"))  # the example makes the maildir, not its parents
        with open(os.path.join(folder, "domains.txt"), "w") as f:
            f.write("# the example table: one domain a line\nsdk.example\n")

    def test_lookup_and_delivery_through_the_example_plugins(self):
        config = CONFIG.format(plugins=self.build)
        with postern.Daemon(config, name="sdk", prepare=self.prepare) as d:
            message = "From: a@sender.example\r\nSubject: sdk\r\n\r\nthrough the SDK\r\n"
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
                s.ehlo()
                self.assertEqual(s.mail("a@sender.example")[0], 250)
                # Not in the table: no rule matches, refused.
                code, text = s.rcpt("bob@other.example")
                self.assertEqual(code // 100, 5, text)
                # In the table, looked up exactly (the table cannot be listed); keys are lowercased first.
                code, text = s.rcpt("alice@SDK.Example")
                self.assertEqual(code, 250, text)
                code, text = s.data(message.encode())
                self.assertEqual(code, 250, text)
            files = d.wait_files(d.path("mail", "alice"), 1)
            self.assertEqual(len(files), 1, d.log())
            self.assertTrue(files[0].endswith(".sdk-example"), files[0])
            data = postern.read_bytes(files[0]).decode()
            self.assertTrue(data.lower().startswith("delivered-to: alice@sdk.example\nreceived: "), data)
            self.assertTrue(data.endswith("\n\nthrough the SDK\n"), data)
            self.assertIn("Subject: sdk\n", data)
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())


if __name__ == "__main__":
    postern.run_tests()
