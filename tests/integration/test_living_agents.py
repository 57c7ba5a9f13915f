"""Delivery agents that live on (core/delivery/agent_pool.*), in the real daemon.

One postern-local serves batch after batch for one action and account: a
maildir file's name holds the pid of the process that wrote it
(time.MusecPpidQcounter...), and with -v the root parent logs each agent's
start, batches and end. Checked here: one agent delivers several messages
sent one after another; two users get two agents, each running as its user
and writing files the user owns; an agent killed in the middle of a batch
costs a temporary failure, and the retry is delivered by a new agent; an idle
agent ends after its idle time; a reload ends the replaced child's agents;
stopping the daemon leaves no agent behind (agents run in sessions of their
own, so the harness's clean-up would not catch one).
"""

import grp
import os
import pwd
import re
import signal
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

IDLE_S = 5.0  # kAgentIdleTime, core/delivery/living_agent.hpp
USERS = [f"ptla{os.getpid() % 10000}", f"ptlb{os.getpid() % 10000}"]

MAILDIR = ('action "l" maildir "@DIR@/mail/%{user.username}" user root\n'
           'match from local for local action "l"\n')
MBOX = ('action "m" mbox\n'
        'match from local for local action "m"\n')
PER_USER = ('action "l" maildir "@DIR@/mail/%{user.username}"\n'
            'match from local for local action "l"\n')
# Waits (and says the agent's pid) while @DIR@/slow exists; then writes the
# message and, always, the pid of the agent that ran it.
SLOW_MDA = ('action "m" mda "if [ -e @DIR@/slow ]; then echo $PPID > @DIR@/waiting.pid; sleep 60; fi; '
            'echo $PPID > @DIR@/ran.pid; cat > @DIR@/out" user root\n'
            'match from local for local action "m"\n')


def send(d, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
        return s.sendmail("sender@example.org", [rcpt], f"Subject: {subject}\r\n\r\n{subject}\r\n")


def writer_pid(name):
    """The pid in a maildir file's name (P<pid>, maildir.cpp unique_name)."""
    m = re.search(r"\.M\d+P(\d+)Q\d+R", name)
    if not m:
        raise AssertionError(f"no pid in maildir name {name}")
    return int(m.group(1))


def agents_of(d):
    """The postern-local processes the daemon's root parent runs now."""
    out = []
    for p in postern.children_of(d.pid):
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() == "postern-local" and postern.process_alive(p):
                    out.append(p)
        except OSError:
            pass
    return out


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def read_pid(path):
    with open(path) as f:
        return int(f.read())


def make_maildirs(names):
    def prepare(folder):
        os.mkdir(os.path.join(folder, "mail"), 0o755)
        for name in names:
            path = os.path.join(folder, "mail", name)
            os.mkdir(path, 0o700)
            if name in USERS:
                u = pwd.getpwnam(name)
                os.chown(path, u.pw_uid, u.pw_gid)
    return prepare


@unittest.skipUnless(os.geteuid() == 0, "needs root: a root daemon starts agents as root, which become the recipient")
class LivingAgents(unittest.TestCase):
    def deliver_in_turn(self, d, rcpt, folder, n):
        """Send n messages, each once the one before is delivered; their files."""
        for k in range(n):
            self.assertEqual(send(d, rcpt, f"message {k}"), {})
            self.assertEqual(len(d.wait_files(folder, k + 1)), k + 1, d.log())
        return sorted(postern.maildir_new(folder))

    def test_one_agent_delivers_batch_after_batch(self):
        with postern.Daemon(MAILDIR, name="agents-one", extra_args=["-v"],
                            prepare=make_maildirs(["root"])) as d:
            names = self.deliver_in_turn(d, "root@localhost", d.path("mail", "root"), 3)
            pids = {writer_pid(n) for n in names}
            self.assertEqual(len(pids), 1, names)
            pid = pids.pop()
            # Three batches, one process: started once, given two more.
            self.assertEqual(len(re.findall(rf"delivery agent started pid={pid} ", d.log())), 1, d.log())
            self.assertTrue(d.wait_log(rf"delivery agent batch pid={pid} batch=3 deliveries=1$"), d.log())
            self.assertEqual(agents_of(d), [pid])
            self.assertEqual(uid_of(pid), 0)

    def test_two_users_get_two_agents_each_as_its_user(self):
        for name in USERS:
            subprocess.run(["userdel", name], capture_output=True)  # left over by an interrupted run
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                           check=True, capture_output=True)
        try:
            with postern.Daemon(PER_USER, name="agents-users", prepare=make_maildirs(USERS)) as d:
                # An agent's uid is read as soon as it has delivered: it ends
                # 5 s after its last batch, which a loaded machine can reach
                # before the sends are all done.
                uids = {}
                for _ in range(2):
                    for name in USERS:
                        self.assertEqual(send(d, f"{name}@localhost", f"for {name}"), {})
                        got = len(postern.maildir_new(d.path("mail", name)))
                        d.wait_files(d.path("mail", name), got + 1)
                        for f in os.listdir(d.path("mail", name, "new")):
                            pid = writer_pid(f)
                            if pid not in uids:
                                uids[pid] = uid_of(pid)
                writers = {}
                for name in USERS:
                    user = pwd.getpwnam(name)
                    folder = d.path("mail", name, "new")
                    files = sorted(os.listdir(folder))
                    self.assertEqual(len(files), 2, d.log())
                    for f in files:
                        st = os.stat(os.path.join(folder, f))
                        self.assertEqual((st.st_uid, st.st_gid), (user.pw_uid, user.pw_gid), f)
                    pids = {writer_pid(f) for f in files}
                    self.assertEqual(len(pids), 1, files)  # each user's two batches: one agent
                    writers[name] = pids.pop()
                    self.assertEqual(uids[writers[name]], user.pw_uid)
                self.assertNotEqual(writers[USERS[0]], writers[USERS[1]])
                # No other agent: those still idle are the two writers.
                self.assertLessEqual(set(agents_of(d)), set(writers.values()))
        finally:
            for name in USERS:
                subprocess.run(["userdel", name], capture_output=True)

    def test_mbox_a_missing_mailbox_is_made_by_a_new_agent_as_root_and_then_agents_live(self):
        user = USERS[0]
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                       check=True, capture_output=True)
        mail_gid = grp.getgrnam("mail").gr_gid

        def prepare(folder):  # as Debian's /var/mail: root:mail 2775, no mailbox for the user
            os.chown(os.path.join(folder, "mbox"), 0, mail_gid)
            os.chmod(os.path.join(folder, "mbox"), 0o2775)

        try:
            with postern.Daemon(MBOX, name="agents-mbox", prepare=prepare) as d:
                mbox = os.path.join(d.mbox_dir, user)
                uid = pwd.getpwnam(user).pw_uid

                def deliver(subject, n):
                    self.assertEqual(send(d, f"{user}@localhost", subject), {})
                    self.assertTrue(d.wait_log(rf"mda delivery .*to={user}@localhost .*result=Ok", count=n), d.log())
                    st = os.stat(mbox)
                    self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (uid, mail_gid, 0o600))

                # Made by an agent of its own (root, then the user), which ends.
                deliver("first", 1)
                self.assertTrue(postern.wait_until(lambda: agents_of(d) == [], 3), agents_of(d))
                # The mailbox is there: the next batch's agent lives on, as the user.
                deliver("second", 2)
                living = agents_of(d)
                self.assertEqual([uid_of(p) for p in living], [uid])
                # A mail reader removed it: made again, by a new agent, not the living one.
                os.unlink(mbox)
                deliver("third", 3)
                data = postern.read_bytes(mbox).decode()
                self.assertIn("Subject: third", data)
                self.assertNotIn("Subject: second", data)
                self.assertEqual(agents_of(d), living)
        finally:
            subprocess.run(["userdel", user], capture_output=True)

    def test_an_agent_killed_mid_batch_fails_it_temporarily_and_a_new_one_delivers_the_retry(self):
        with postern.Daemon(SLOW_MDA, name="agents-kill") as d:
            open(d.path("slow"), "w").close()
            self.assertEqual(send(d, "root@localhost", "killed"), {})
            self.assertTrue(postern.wait_until(lambda: os.path.exists(d.path("waiting.pid"))
                                               and os.path.getsize(d.path("waiting.pid")) > 0, 10), d.log())
            victim = read_pid(d.path("waiting.pid"))
            self.assertIn(victim, agents_of(d))
            os.kill(victim, signal.SIGKILL)
            self.assertTrue(d.wait_log(r"mda delivery .*to=root@localhost .*result=TempFail"), d.log())
            self.assertFalse(os.path.exists(d.path("out")))
            self.assertEqual(postern.posternctl(d, "show", "queue").count("killed by signal 9"), 1,
                             postern.posternctl(d, "show", "queue"))
            os.unlink(d.path("slow"))
            self.assertEqual(postern.posternctl(d, "schedule", "all"), "1 envelope scheduled\n")
            self.assertTrue(d.wait_log(r"mda delivery .*to=root@localhost .*result=Ok"), d.log())
            self.assertNotEqual(read_pid(d.path("ran.pid")), victim)
            self.assertTrue(postern.read_bytes(d.path("out")).endswith(b"Subject: killed\n\nkilled\n"))
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())

    def test_an_idle_agent_ends_after_its_idle_time(self):
        with postern.Daemon(MAILDIR, name="agents-idle", extra_args=["-v"],
                            prepare=make_maildirs(["root"])) as d:
            pid = writer_pid(self.deliver_in_turn(d, "root@localhost", d.path("mail", "root"), 1)[0])
            self.assertEqual(agents_of(d), [pid])
            self.assertFalse(postern.wait_until(lambda: not postern.process_alive(pid), IDLE_S - 1.5))
            self.assertTrue(postern.wait_until(lambda: not postern.process_alive(pid), 5), d.log())
            self.assertTrue(d.wait_log(rf"delivery agent ended pid={pid} batches=1 exit=0 signal=0$"), d.log())
            self.assertEqual(agents_of(d), [])

    def test_a_reload_ends_the_replaced_childs_agents(self):
        with postern.Daemon(MAILDIR, name="agents-reload", prepare=make_maildirs(["root"])) as d:
            folder = d.path("mail", "root")
            before = writer_pid(self.deliver_in_turn(d, "root@localhost", folder, 1)[0])
            self.assertEqual(agents_of(d), [before])
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(d.wait_log(r"configuration reloaded"), d.log())
            # Well before its idle time: the drained child's agent ends at once.
            self.assertTrue(postern.wait_until(lambda: not postern.process_alive(before), IDLE_S - 2), d.log())
            self.assertEqual(send(d, "root@localhost", "after reload"), {})
            self.assertEqual(len(d.wait_files(folder, 2, timeout=20)), 2, d.log())
            new = [n for n in postern.maildir_new(folder)
                   if b"after reload" in postern.read_bytes(os.path.join(folder, "new", n))]
            self.assertEqual(len(new), 1)
            self.assertNotEqual(writer_pid(new[0]), before)

    def test_stopping_the_daemon_leaves_no_agent_behind(self):
        with postern.Daemon(MAILDIR, name="agents-stop", prepare=make_maildirs(["root"])) as d:
            self.deliver_in_turn(d, "root@localhost", d.path("mail", "root"), 2)
            agents = agents_of(d)
            self.assertEqual(len(agents), 1)
            d.stop()
            # Well before the idle time: the agent ends with the daemon.
            self.assertTrue(postern.wait_until(lambda: not any(postern.process_alive(p) for p in agents), 2),
                            agents)


if __name__ == "__main__":
    postern.run_tests()
