"""The real Slurm test cluster itself (tests/slurm.py): two nodes, steps across both, cleanup."""
import subprocess

import pytest

pytestmark = pytest.mark.slurm


def _run(slurm, argv, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True, env=slurm.env(), timeout=timeout)


def test_two_nodes_idle_and_one_step_spans_both(slurm):
    assert slurm.all_idle()
    p = _run(slurm, ["srun", "-N2", "--kill-on-bad-exit=1", "printenv", "SLURMD_NODENAME"])
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split()) == ["node1", "node2"]
    assert slurm.wait_empty() == []


def test_a_failing_task_ends_the_whole_step(slurm):
    p = _run(slurm, ["srun", "-N2", "--kill-on-bad-exit=1", "bash", "-c",
                     'if [ "$SLURM_NODEID" = 1 ]; then exit 3; fi; sleep 60'])
    assert p.returncode != 0
    assert "exit code 3" in p.stderr
    assert slurm.wait_empty() == []
