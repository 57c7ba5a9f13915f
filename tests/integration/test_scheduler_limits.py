"""How many local deliveries the scheduler runs at once.

At most 4 agent runs at a time for one route (action and account): more
would only contend for one mailbox, and what waits goes in the next batch.
The limit is per route: two routes run side by side, more than 4 in all.

Each delivery is an mda command that records how many runs of its route, and
of both routes, are under way as it starts, then takes a second.
"""

import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

SLOW = """#!/bin/sh
# $1: the route (action) name. Counts the runs under way, then takes 1 s.
d=@DIR@
touch "$d/run-$1/$$" "$d/run-all/$$"
ls "$d/run-$1" | wc -l >> "$d/seen-$1"
ls "$d/run-all" | wc -l >> "$d/seen-all"
cat > /dev/null
sleep 1
rm -f "$d/run-$1/$$" "$d/run-all/$$"
echo 1 >> "$d/done-$1"
"""

CONFIG = ('action "a" mda "/bin/sh @DIR@/slow.sh a" user root\n'
          'action "b" mda "/bin/sh @DIR@/slow.sh b" user root\n'
          'match from local for rcpt-to "a@localhost" action "a"\n'
          'match from local for rcpt-to "b@localhost" action "b"\n')

PER_ROUTE = 6  # messages to each route: more than its limit of 4


def prepare(folder):
    with open(os.path.join(folder, "slow.sh"), "w") as f:
        f.write(SLOW.replace("@DIR@", folder))
    for sub in ("run-a", "run-b", "run-all"):
        os.mkdir(os.path.join(folder, sub))


def lines(path):
    """The numbers a script wrote to `path`, one a line."""
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ValueError):
        return []


@unittest.skipUnless(os.geteuid() == 0, "needs root: mda commands run as the action's user, root")
class LocalRunsPerRoute(unittest.TestCase):
    def test_at_most_four_runs_per_route_and_routes_side_by_side(self):
        with postern.Daemon(CONFIG, name="sched-limits", prepare=prepare) as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=20) as s:
                for i in range(PER_ROUTE):
                    for route in ("a", "b"):
                        s.sendmail("x@localhost", [f"{route}@localhost"], f"Subject: {route}{i}\r\n\r\nhi\r\n")
            done = lambda: all(len(lines(d.path(f"done-{r}"))) == PER_ROUTE for r in "ab")  # noqa: E731
            self.assertTrue(postern.wait_until(done, 60), d.log())
            for route in "ab":
                seen = lines(d.path(f"seen-{route}"))
                self.assertEqual(len(seen), PER_ROUTE, d.log())
                self.assertLessEqual(max(seen), 4, f"route {route} ran {max(seen)} at once")
                self.assertGreaterEqual(max(seen), 2, f"route {route} never ran two at once")
            self.assertGreater(max(lines(d.path("seen-all"))), 4, "the limit is per route, not for all")
            self.assertEqual(postern.queue(d), [])


if __name__ == "__main__":
    postern.run_tests()
