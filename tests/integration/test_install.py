"""`cmake --install` and the systemd unit it installs agree with each other.

The build tree is installed with DESTDIR into a temporary folder (never onto
this machine: DESTDIR also catches the absolute plugin and libexec folders).
Then the installed posternd.service must start binaries that were installed
where it says, with the configuration that was installed where it says; the
binaries' compiled-in folders (postern-local, plugins, posternctl's default
configuration) must hold what was installed; and the unit's sandbox must not
take away what the daemon needs: users' homes writable for ~/Maildir, /var
writable for the queue and /var/mail, root to bind port 25 and to start
agents as each user. `systemd-analyze verify` checks the unit's syntax when
it can run here.

Needs a complete build (every installed target), as CTest runs it.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

UNIT = "posternd.service"


def cache_value(name):
    """A variable of the build's CMakeCache.txt, or None."""
    with open(os.path.join(postern.BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(rf"{re.escape(name)}:[A-Z]+=(.*)$", line.rstrip("\n"))
            if m:
                return m.group(1)
    return None


def unit_settings(path):
    """{section: [(key, value), ...]} of a unit file (repeated keys kept)."""
    sections, current = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], [])
            elif "=" in line and current is not None:
                k, v = line.split("=", 1)
                current.append((k.strip(), v.strip()))
    return sections


def truthy(value):
    return value.lower() in ("1", "yes", "true", "on")


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cmake = shutil.which("cmake")
        if not cls.cmake:
            raise unittest.SkipTest("cmake not found")
        cls.destdir = tempfile.mkdtemp(prefix="postern-install-")
        cls.install_log = cls.install()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    @classmethod
    def install(cls):
        env = dict(os.environ, DESTDIR=cls.destdir)
        r = subprocess.run([cls.cmake, "--install", postern.BUILD_DIR], env=env, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"cmake --install failed (is the build complete?):\n{r.stdout}{r.stderr}")
        return r.stdout

    def staged(self, path):
        """Where an installed absolute path is under DESTDIR."""
        self.assertTrue(os.path.isabs(path), path)
        return os.path.join(self.destdir, path.lstrip("/"))

    def unit_path(self):
        found = [os.path.join(d, UNIT) for d, _, files in os.walk(self.destdir) if UNIT in files]
        self.assertEqual(len(found), 1, f"{UNIT} installed {len(found)} times: {found}\n{self.install_log}")
        return found[0]

    def service(self):
        return unit_settings(self.unit_path()).get("Service", [])

    def commands(self):
        cmds = [(k, v) for k, v in self.service() if k in ("ExecStartPre", "ExecStart")]
        self.assertEqual(sorted(k for k, _ in cmds), ["ExecStart", "ExecStartPre"], cmds)
        return cmds

    def config_of(self, argv):
        self.assertIn("-f", argv, argv)
        return argv[argv.index("-f") + 1]

    def test_unit_starts_the_installed_binaries_with_the_installed_config(self):
        for key, value in self.commands():
            argv = shlex.split(value.lstrip("-@:+!"))
            with self.subTest(key=key, command=value):
                binary = self.staged(argv[0])
                self.assertTrue(os.path.isfile(binary) and os.access(binary, os.X_OK),
                                f"{key} runs {argv[0]}, but the install step put no program there:\n"
                                f"{self.install_log}")
                self.assertEqual(os.path.basename(argv[0]), "posternd")
                self.assertTrue(os.path.isfile(self.staged(self.config_of(argv))),
                                f"{key} reads {self.config_of(argv)}, which was not installed:\n{self.install_log}")
        # systemctl reload asks the daemon with the installed posternctl,
        # about the same configuration, and fails when it is refused.
        reload = shlex.split(dict(self.service())["ExecReload"].lstrip("-@:+!"))
        self.assertEqual((os.path.basename(reload[0]), reload[-1]), ("posternctl", "reload"), reload)
        self.assertTrue(os.access(self.staged(reload[0]), os.X_OK), f"{reload[0]}:\n{self.install_log}")
        start = shlex.split(dict(self.commands())["ExecStart"].lstrip("-@:+!"))
        self.assertEqual(self.config_of(reload), self.config_of(start))
        pre = dict(self.commands())["ExecStartPre"]
        self.assertIn(" -n ", f" {pre} ")  # a check, not a second daemon
        if dict(self.service()).get("Type", "simple") == "simple":
            self.assertIn(" -F ", f" {dict(self.commands())['ExecStart']} ")  # stays in the foreground

    def test_binaries_find_what_was_installed(self):
        start = shlex.split(dict(self.commands())["ExecStart"].lstrip("-@:+!"))
        sbin = os.path.dirname(start[0])
        posternctl = self.staged(os.path.join(sbin, "posternctl"))
        self.assertTrue(os.access(posternctl, os.X_OK), self.install_log)
        # posternctl's default configuration is the one the unit runs with.
        r = subprocess.run([posternctl, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn(f"of\n   {self.config_of(start)} when it exists", r.stdout)
        # The delivery agent and the plugins, where the daemon was built to look.
        libexec, plugins = cache_value("POSTERN_LIBEXEC_DIR"), cache_value("POSTERN_PLUGIN_DIR")
        self.assertTrue(os.access(self.staged(os.path.join(libexec, "postern-local")), os.X_OK), self.install_log)
        built = sorted(f for f in os.listdir(os.path.join(postern.BUILD_DIR, "plugins")) if f.endswith(".so"))
        self.assertIn("delivery-maildir.so", built)
        for so in built:
            self.assertTrue(os.path.isfile(self.staged(os.path.join(plugins, so))), f"{so}:\n{self.install_log}")

    def test_sandbox_leaves_what_delivery_needs(self):
        settings = {}
        for k, v in self.service():
            settings[k] = v  # the last one wins, as in systemd
        # ~/Maildir, mda commands run in the home folder, ~/.forward.
        self.assertIn(settings.get("ProtectHome", "no").lower(), ("no", "false", "0", "off"),
                      "ProtectHome breaks delivery to home folders (Read-only file system)")
        # A stop reaches posternd alone, which waits for the deliveries under
        # way; control-group would kill them and get their mail made twice.
        self.assertEqual(settings.get("KillMode"), "mixed")
        # The queue in /var/spool/postern and mbox files in /var/mail.
        self.assertNotEqual(settings.get("ProtectSystem", "no").lower(), "strict", "/var must stay writable")
        for path in ("/var", "/var/mail", "/var/spool", "/home"):
            self.assertNotIn(path, settings.get("ReadOnlyPaths", "").split())
            self.assertNotIn(path, settings.get("InaccessiblePaths", "").split())
        # setgid dot-locking helpers that mda commands run (procmail, dotlockfile).
        self.assertFalse(truthy(settings.get("NoNewPrivileges", "no")), "NoNewPrivileges breaks setgid MDAs")
        # Root: binds port 25, reads keys and /etc/shadow, starts agents as each user.
        self.assertIn(settings.get("User", "root"), ("root", "0"))
        for key in ("DynamicUser", "PrivateUsers"):
            self.assertFalse(truthy(settings.get(key, "no")), key)

    def test_sysusers_file_is_where_systemd_sysusers_reads(self):
        tool = shutil.which("systemd-sysusers")
        if not tool:
            self.skipTest("systemd-sysusers not found")
        r = subprocess.run([tool, f"--root={self.destdir}", "--dry-run"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("_postern", r.stdout + r.stderr)

    def test_reinstall_keeps_an_edited_config(self):
        conf = self.staged(self.config_of(shlex.split(dict(self.commands())["ExecStart"].lstrip("-@:+!"))))
        with open(conf, "a") as f:
            f.write("# the administrator's own line\n")
        self.install()
        with open(conf) as f:
            self.assertTrue(f.read().endswith("# the administrator's own line\n"))

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze not found")
        # A unit that must verify cleanly tells whether verify works here at all.
        probe = os.path.join(self.destdir, "probe.service")
        with open(probe, "w") as f:
            f.write("[Service]\nType=oneshot\nExecStart=/bin/true\n")
        r = subprocess.run([tool, "verify", "--man=no", probe], capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
            self.skipTest(f"systemd-analyze verify does not work here: {r.stdout}{r.stderr}")
        # Verify looks for the commands on this machine, where nothing was
        # installed; that they exist under DESTDIR is checked above.
        r = subprocess.run([tool, "verify", "--man=no", self.unit_path()], capture_output=True, text=True,
                           timeout=60)
        missing = re.compile(r"Command \S+/postern(d|ctl) is not executable: No such file or directory$")
        other = [line for line in (r.stdout + r.stderr).splitlines() if line.strip() and not missing.search(line)]
        self.assertEqual(other, [], f"systemd-analyze verify:\n{r.stdout}{r.stderr}")


if __name__ == "__main__":
    postern.run_tests()
