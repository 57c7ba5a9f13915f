"""Network namespaces for integration tests: `inside(ns)` runs a block with
this thread in a namespace made by `ip netns add` (test_seeds.py,
test_listen_egress.py)."""

import contextlib
import ctypes
import os
import sys

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(ns):
    """Run the block with this thread in network namespace ns: sockets made
    in it belong to ns for good. Failing to come back aborts the process,
    since nothing after it would run where it thinks it does."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(target, _CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns into {ns}: {os.strerror(e)}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, _CLONE_NEWNET) != 0:
                sys.stderr.write("cannot return to the test's own network namespace; aborting\n")
                os._exit(3)
    finally:
        os.close(own)
