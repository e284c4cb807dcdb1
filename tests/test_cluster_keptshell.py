"""A host's kept shell (launcher/keptshell.py) on the real sshd cluster: repeated calls share one
long-lived shell (no login shell, no ~/.bashrc per call), each call's exit status and output are its
own, and a call that runs past its timeout never leaks into the next one."""
import time

import pytest

from launcher import remote
from launcher.inventory import load_inventory

pytestmark = pytest.mark.cluster


@pytest.fixture
def target(cluster):
    t = remote.target(load_inventory(cluster.inventory).hosts[0])
    yield t
    t.close()


def test_repeated_calls_share_one_shell_and_keep_their_own_results(target):
    parent = 'echo "$PPID $(cat /proc/$PPID/comm)"; echo "to stderr" >&2'
    kept = {target.run_kept(parent, timeout=10, check=True).stdout for _ in range(5)}
    assert len(kept) == 1 and kept.pop().split()[1] == "bash"  # one kept bash started every call
    assert target.run(parent, timeout=10).stdout.split()[1].startswith("sshd")  # a plain run: sshd's login shell
    done = target.run_kept("printf 'no newline'; echo err >&2; exit 4", timeout=10)
    assert (done.rc, done.stdout, done.stderr) == (4, "no newline", "err\n")
    assert target.run_kept("set -e; false; echo never", timeout=10).rc == 1  # ends only that call
    assert target.run_kept("echo still here", timeout=10).stdout == "still here\n"


def test_a_call_past_its_timeout_is_dropped_and_never_answers_the_next(target):
    with pytest.raises(remote.RemoteError) as e:
        target.run_kept("sleep 3; echo late=1", timeout=1)
    assert e.value.kind == "timeout"
    done = target.run_kept("echo after=1", timeout=10)
    assert done.stdout == "after=1\n" and done.rc == 0


def test_late_output_of_an_earlier_calls_background_process_is_not_the_next_calls(target):
    done = target.run_kept("(sleep 0.3; echo late-out; echo late-err >&2) &", timeout=10)
    assert (done.rc, done.stdout, done.stderr) == (0, "", "")
    time.sleep(1.0)  # the leftover writer has written to the kept shell's stdout and stderr by now
    done = target.run_kept("echo mine; echo mine-err >&2", timeout=10)
    assert (done.stdout, done.stderr) == ("mine\n", "mine-err\n")
