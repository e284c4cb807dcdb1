"""The loopback cluster's `plain_login` hosts (bench/bench_deploy.py measures deploy on them): their
SSH sessions start with SHLVL=1, so the login bash counts itself nested and skips ~/.bashrc; the
default hosts run the login shell as it is."""
import pytest

from cluster import Cluster
from launcher import remote
from launcher.inventory import load_inventory

pytestmark = pytest.mark.cluster


def _login_shlvl(c: Cluster) -> str:
    t = remote.target(load_inventory(c.inventory).hosts[0])
    try:
        return t.run('echo "shlvl=$SHLVL"', timeout=10, check=True).stdout.split("shlvl=")[-1].strip()
    finally:
        t.close()


def test_plain_login_sessions_start_nested_so_bash_skips_bashrc(cluster, tmp_path):
    plain = Cluster(tmp_path / "plain", 1, plain_login=True).up()
    try:
        assert (_login_shlvl(cluster), _login_shlvl(plain)) == ("1", "2")
    finally:
        plain.down()
