"""A fresh machine: without sshd, ssh, rsync and mpirun, `make test` still passes (tests/prereqs.py).

The tools are not uninstalled here (the machine is shared): each case runs with a PATH and an sshd
location where they are absent, as a user who is not root where that matters.
"""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ABSENT = {"MAE_LAUNCH_TEST_SSHD": "/nonexistent/sshd", "PATH": "/nonexistent-bin"}
SENTENCE = ("the loopback cluster tests need openssh-server, openssh-client, rsync; install with: "
            "sudo apt-get install -y openssh-server openssh-client rsync (or run `make test` as root, which installs them)")


def _as_nobody(argv, env):
    """argv as user nobody when we are root (else as ourselves: already not root)."""
    if os.geteuid() == 0:
        argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    return {**env, **ABSENT, "HOME": "/tmp", **extra}


def test_not_root_prints_the_one_command_to_run():
    p = _as_nobody([sys.executable, "tests/prereqs.py"], _env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ("note: the loopback cluster tests need openssh-server, openssh-client, rsync, openmpi-bin; "
                                "install with: sudo apt-get install -y openssh-server openssh-client rsync openmpi-bin "
                                "(or run `make test` as root, which installs them)")


@pytest.mark.parametrize("ci", ["", "true"])
def test_cluster_tests_skip_with_that_sentence_but_never_in_ci(ci):
    test = "tests/test_cluster_deploy.py::test_deploy_three_hosts_then_unchanged_redeploy"
    p = _as_nobody([sys.executable, "-m", "pytest", test, "-rs", "-q", "-p", "no:cacheprovider"], _env(CI=ci))
    if ci:
        assert p.returncode == 1 and "cluster test skipped in CI (CI=true)" in p.stdout, p.stdout
    else:
        assert p.returncode == 0 and "1 skipped" in p.stdout, p.stdout
        assert SENTENCE in " ".join(p.stdout.split()), p.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="installing is what root does")
def test_root_installs_them_with_apt_get(tmp_path):
    calls = tmp_path / "calls"
    stub = tmp_path / "bin" / "apt-get"  # records its arguments; installs nothing
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")
    stub.chmod(0o755)
    env = _env(PATH=str(stub.parent))
    p = subprocess.run([sys.executable, "tests/prereqs.py"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.returncode == 0
    assert calls.read_text().splitlines() == [
        "update -qq", "install -y -qq --no-install-recommends openssh-server openssh-client rsync openmpi-bin"]
    assert p.stdout.splitlines() == ["installing what the cluster tests need: openssh-server openssh-client rsync openmpi-bin",
                                     "could not install them; the cluster tests will be skipped"]
