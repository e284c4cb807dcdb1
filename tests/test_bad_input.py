"""Bad input and a bad local set-up: one `error:` line, exit status 2, never a traceback."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={**os.environ, **(env or {})})


def test_deploy_without_local_rsync_names_the_package(tmp_path):
    p = cli("deploy", "-i", "inventories/local.yml", env={"PATH": str(tmp_path)})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.splitlines() == ["error: rsync is not installed on this machine; install it "
                                     "(Debian/Ubuntu: apt-get install rsync)"]
