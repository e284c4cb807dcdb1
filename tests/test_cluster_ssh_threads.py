"""Commands on every host at once, from one thread per host, over paramiko (launcher/remote.py,
launcher/keptshell.py), on the real sshd cluster.

Each command leaves a background writer behind, so data keeps arriving after its exit status, while
the command's channel is being closed and the other hosts' threads open and close theirs. Waiting on
a channel with `select` made paramiko write into a descriptor that another host's thread had just
been given: `connection lost: [Errno 9] Bad file descriptor` on a host that had done nothing wrong
(about 1 command in 120 here). Every command must succeed and keep its own output."""
import collections
import threading

import pytest

from launcher import remote
from launcher.inventory import load_inventory

pytestmark = pytest.mark.cluster

ROUNDS = 60
LATE = 'echo "first {i}"; (for n in 1 2 3 4 5 6; do echo "late $n"; echo "e$n" >&2; done) &'
KEPT = 'echo "first {i}"; seq 1 300; echo err >&2'


def _hammer(t, failures, kept):
    for i in range(ROUNDS):
        try:
            done = t.run_kept(KEPT.format(i=i), timeout=30) if kept else t.run(LATE.format(i=i), timeout=30)
            if done.rc != 0 or not done.stdout.startswith(f"first {i}\n"):
                failures[f"{t.name}: rc {done.rc}, stdout {done.stdout[:40]!r}"] += 1
        except remote.RemoteError as e:
            failures[str(e)] += 1
        if i % 10 == 9 and not kept:
            t.close()  # new connections too: their sockets take the numbers just freed


def test_parallel_commands_with_late_output_never_break_another_host(cluster):
    hosts = load_inventory(cluster.inventory).hosts
    plain, kept = remote.targets(hosts), remote.targets(hosts)  # two connections per host
    failures = collections.Counter()
    threads = ([threading.Thread(target=_hammer, args=(t, failures, False)) for t in plain]
               + [threading.Thread(target=_hammer, args=(t, failures, True)) for t in kept])
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=600)
        assert not any(th.is_alive() for th in threads)
    finally:
        remote.close_all(plain + kept)
    assert not failures, dict(failures)
