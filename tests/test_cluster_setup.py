"""`mae-launch setup` on the loopback cluster: setup commands, a venv with a small requirement set (a
wheel made here, so no index is needed), idempotence, --wheelhouse, a command failing on one host,
and `check` saying which hosts need setup."""
import base64
import hashlib
import json
import re
import subprocess
import zipfile

import pytest

from cluster_fixtures import run_cli, tiny_jobs

pytestmark = pytest.mark.cluster


def make_wheel(folder, name="maetiny", version="0.1"):
    """A minimal pure-Python wheel (module `maetiny` with VALUE = 42)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}.py": "VALUE = 42\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def _inventory(cluster, tmp_path, setup_lines, name="inv.yml"):
    req = tmp_path / "requirements.txt"
    if not req.exists():
        req.write_text(f"{make_wheel(tmp_path)}\n")
    data = cluster.inventory_data(jobs=tiny_jobs())
    data["paths"] = {**data["paths"], "venv": "setupvenv", "requirements": str(req)}
    data["setup"] = setup_lines
    path = tmp_path / name
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def _check(inv):
    p = run_cli(["check", "-i", inv, "--min-free-gb", "0", "--json"], timeout=180)
    return {h: v["setup"] for h, v in json.loads(p.stdout)["hosts"].items()}


def test_setup_then_unchanged_then_wheelhouse(cluster, tmp_path):
    inv = _inventory(cluster, tmp_path, ["echo {{ host | q }} > prepared.txt", "mkdir -p data"])
    assert all(not v["ok"] for v in _check(inv).values())
    p = run_cli(["setup", "-i", inv], timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    for h in cluster.hosts:
        assert (h.workdir / "prepared.txt").read_text().strip() == h.name
        out = subprocess.run([str(h.workdir / "setupvenv" / "bin" / "python"), "-c", "import maetiny; print(maetiny.VALUE)"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "42", out.stderr
    assert p.stdout.count("set up") >= 3
    again = run_cli(["setup", "-i", inv], timeout=300, check=0)
    assert again.stdout.count("unchanged") >= 3 and "set up" not in again.stdout.split("setup of")[-1]
    assert _check(inv) == {h.name: {"ok": True, "text": "up to date"} for h in cluster.hosts}
    wheels = tmp_path / "wheels"
    p = run_cli(["setup", "-i", inv, "--wheelhouse", "--wheel-dir", wheels, "--force"], timeout=600, check=0)
    for h in cluster.hosts:
        assert (h.workdir / ".mae-launch-wheels" / "maetiny-0.1-py3-none-any.whl").is_file()
    assert list(wheels.glob("*/maetiny-0.1-py3-none-any.whl"))


def test_setup_command_failing_on_one_host(cluster, tmp_path):
    lines = ["echo first", "case $PWD in */host1/*) echo broken-here; exit 3;; esac"]
    inv = _inventory(cluster, tmp_path, lines, "fail.yml")
    p = run_cli(["setup", "-i", inv], timeout=600)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "setup failed on 1 of 3 host(s): host1" in p.stdout and "broken-here" in p.stdout
    state = _check(inv)
    assert state["host1"]["ok"] is False and "needs setup" in state["host1"]["text"]
    assert state["host0"] == state["host2"] == {"ok": True, "text": "up to date"}
    bad = _inventory(cluster, tmp_path, ["echo {{ nothing_here }}"], "bad.yml")
    p = run_cli(["setup", "-i", bad], timeout=60, check=2)
    assert p.stderr.startswith("error: ") and "setup[0] cannot be rendered" in p.stderr


def test_setup_then_deploy_keep_each_others_files(cluster, tmp_path):
    """setup's records make a workdir mae-launch's: deploy goes ahead there (no --adopt), a deploy that
    changes code keeps them, and check still reads every host as set up (issue: setup and deploy undid
    each other)."""
    inv = _inventory(cluster, tmp_path, [], "both.yml")
    data = json.loads(inv.read_text())
    data["paths"]["venv"] = ".venv"
    for h in data["hosts"]:
        h["workdir"] = str(tmp_path / f"work-{h['name']}")
    inv.write_text(json.dumps(data))
    source = tmp_path / "src"
    (source / "launcher").mkdir(parents=True)
    (source / "launcher" / "code.py").write_text("print('one')\n")
    run_cli(["setup", "-i", inv], timeout=600, check=0)
    records = {".mae-launch-setup", ".mae-launch-requirements.txt"}
    for h in data["hosts"]:
        assert records <= {p.name for p in (tmp_path / f"work-{h['name']}").iterdir()}
    run_cli(["deploy", "-i", inv, "--no-build", "--source", source], timeout=300, check=0)
    (source / "launcher" / "code.py").write_text("print('two')\n")
    p = run_cli(["deploy", "-i", inv, "--no-build", "--source", source], timeout=300, check=0)
    assert "deployed" in p.stdout
    for h in data["hosts"]:
        work = tmp_path / f"work-{h['name']}"
        assert (work / "launcher" / "code.py").read_text() == "print('two')\n"
        assert records | {".mae-launch-workdir"} <= {p.name for p in work.iterdir()}
    assert _check(inv) == {h.name: {"ok": True, "text": "up to date"} for h in cluster.hosts}
    again = run_cli(["setup", "-i", inv], timeout=300, check=0)
    assert again.stdout.split("setup of")[-1].count("unchanged") == len(cluster.hosts)
    for out, title in ((p.stdout, "deploy to 3 host(s)"), (again.stdout, "setup of 3 host(s)")):
        assert f"┘\n{title}\n" in out, out  # piped: the live table ends its line before the next title
        assert not re.search(r"┘[^\n]", out), out
