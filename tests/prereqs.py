"""What the cluster tests need from the machine, and getting it (`make test` runs this first).

The loopback cluster (tests/cluster.py) runs real OpenSSH daemons, syncs with rsync and starts
poprun-style jobs with OpenMPI's mpirun. On a machine without them:
- as root with apt-get: they are installed (`python tests/prereqs.py`);
- otherwise: one line says which command installs them, and the cluster tests are reported as
  skipped with that same sentence (in CI, CI=true, a skipped cluster test fails: see conftest.py).
`MAE_LAUNCH_TEST_SSHD` names the sshd binary (default /usr/sbin/sshd).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGES = ("openssh-server", "openssh-client", "rsync", "openmpi-bin")
# tool -> Debian package; mpirun only for the poprun stand-in tests
TOOLS = {"ssh": "openssh-client", "ssh-keygen": "openssh-client", "rsync": "rsync"}
MPI_TOOLS = {"mpirun": "openmpi-bin"}


def sshd_path() -> str:
    return os.environ.get("MAE_LAUNCH_TEST_SSHD", "/usr/sbin/sshd")


def missing_packages(mpi: bool = False) -> list[str]:
    missing = [] if os.access(sshd_path(), os.X_OK) else ["openssh-server"]
    for tool, package in {**TOOLS, **(MPI_TOOLS if mpi else {})}.items():
        if shutil.which(tool) is None and package not in missing:
            missing.append(package)
    return [p for p in PACKAGES if p in missing]


def install_command(packages) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def skip_reason(mpi: bool = False) -> str | None:
    """Why the cluster tests (with mpi: the poprun stand-in tests) cannot run here (None: they can)."""
    missing = missing_packages(mpi)
    if missing:
        return (f"the loopback cluster tests need {', '.join(missing)}; install with: {install_command(missing)} "
                "(or run `make test` as root, which installs them)")
    if os.geteuid() != 0:
        return "the loopback cluster tests run sshd daemons and log in as root: run them as root"
    return None


def ensure() -> int:
    missing = missing_packages(mpi=True)
    if not missing:
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing what the cluster tests need: {' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
        if done.returncode == 0 and not missing_packages():
            return 0
        print("could not install them; the cluster tests will be skipped", flush=True)
        return 0
    print(f"note: {skip_reason(mpi=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(ensure())
