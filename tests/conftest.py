import os

import pytest

# A skip whose reason starts with this is about what the machine is, not what was installed on it:
# it stays a skip in CI.
CAPABILITY = "machine capability:"

# Keep torch from oversubscribing the (often 2-core) test machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    if CAPABILITY in str(report.longrepr):  # the machine cannot (e.g. no IPv6 loopback): not a missing install
        return
    for marker in ("cluster", "slurm"):
        if item.get_closest_marker(marker):
            report.outcome = "failed"
            report.longrepr = f"{marker} test skipped in CI (CI=true): {report.longrepr}"
            return

# The loopback sshd cluster fixtures (cluster, deployed, ...): tests/cluster_fixtures.py
from cluster_fixtures import cluster, deployed, project_source, runs_dir  # noqa: E402,F401
# The real Slurm cluster fixture (slurm): tests/slurm_fixtures.py
from slurm_fixtures import slurm  # noqa: E402,F401


@pytest.fixture
def poptorch_standin(monkeypatch):
    """The SDK-free PopTorch STAND-IN (tests/standins/poptorch_standin) as ``poptorch``, for one test."""
    from standins import poptorch_standin

    monkeypatch.setitem(__import__("sys").modules, "poptorch", poptorch_standin)
    monkeypatch.setitem(__import__("sys").modules, "poptorch.optim", poptorch_standin.optim)
    return poptorch_standin
