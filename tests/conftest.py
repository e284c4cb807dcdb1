import os

import pytest

# Keep torch from oversubscribing the (often 2-core) test machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and item.get_closest_marker("cluster"):
        report.outcome = "failed"
        report.longrepr = f"cluster test skipped in CI (CI=true): {report.longrepr}"

# The loopback sshd cluster fixtures (cluster, deployed, ...): tests/cluster_fixtures.py
from cluster_fixtures import cluster, deployed, project_source, runs_dir  # noqa: E402,F401
