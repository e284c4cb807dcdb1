"""`mae-launch exec` on the loopback cluster: every host in its workdir with the venv active, a command
failing on one host, --host/--exclude, a per-host timeout, a host down."""
import pytest

from cluster_fixtures import run_cli, tiny_jobs

pytestmark = pytest.mark.cluster

FAIL_ON_HOST1 = ["bash", "-c", 'echo "in $PWD"; python -c "import sys; print(sys.prefix)"; '
                 'echo to-stderr >&2; case $PWD in */host1/*) exit 7;; esac']


def test_exec_everywhere_one_host_failing(cluster, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    p = run_cli(["exec", "-i", inv, "--", *FAIL_ON_HOST1], timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    for h in cluster.hosts:
        assert any(line.startswith(f"{h.name} ") and line.endswith(f"| in {h.workdir}") for line in lines), p.stdout
        assert any(line.startswith(f"{h.name} ") and line.endswith(f"| {cluster.venv}") for line in lines), p.stdout
        assert any(line.startswith(f"{h.name} ") and line.endswith("| to-stderr") for line in lines)
    table = p.stdout.split("exec\n")[-1]
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in table.splitlines() if "host" in line
            and "│" in line}
    assert rows == {"host0": "0", "host1": "7", "host2": "0"}, table


def test_exec_subset_quoting_and_no_venv(cluster, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    p = run_cli(["exec", "-i", inv, "--exclude", "host1", "--no-venv", "--", "printf", "<%s>\\n", "a b", "$HOME",
                 "it's"], timeout=120, check=0)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "host1" not in p.stdout, p.stdout  # excluded: not run there, not in the table
    for name in ("host0", "host2"):
        assert f"{name}     | <a b>" in p.stdout and f"{name}     | <$HOME>" in p.stdout
        assert f"{name}     | <it's>" in p.stdout
    one = run_cli(["exec", "-i", inv, "--host", "host[1-2]", "--", "true"], timeout=120, check=0)
    assert "host1" in one.stdout and "host2" in one.stdout and "host0" not in one.stdout
    bad = run_cli(["exec", "-i", inv, "--host", "host9", "--", "true"], timeout=60, check=2)
    assert bad.stderr.startswith("error: --host host9: no such host") and "Traceback" not in bad.stderr


def test_exec_timeout_and_host_down(cluster, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    p = run_cli(["exec", "-i", inv, "--timeout", "2", "--", "sleep", "60"], timeout=60)
    assert p.returncode == 1 and p.stdout.count("timed out after 2 s") == 3, p.stdout
    cluster.hosts[2].stop()
    try:
        p = run_cli(["exec", "-i", inv, "--", "true"], timeout=120)
    finally:
        cluster.hosts[2].start()
        cluster.hosts[2].wait_ready()
    assert p.returncode == 1 and "unreachable" in p.stdout, p.stdout
    assert p.stdout.count("│ 0 ") == 2
