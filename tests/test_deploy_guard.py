"""Never destroy: deploy refuses a workdir that is not mae-launch's to replace, touching nothing.

Real deploys with real rsync into local (`connection: local`) hosts' workdirs under tmp_path.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    (src / "launcher").mkdir()
    (src / "launcher" / "code.py").write_text("print('hi')\n")
    (src / "README.md").write_text("project\n")
    return src


def _inventory(tmp_path, workdir, **paths):
    doc = {"name": "guard", "launcher": "torchrun",
           "hosts": [{"name": "h0", "connection": "local", "workdir": str(workdir)}],
           "paths": {"venv": None, **paths}, "jobs": {"pretrain": {"config": "digits_pretrain"}}}
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def deploy(inv, source, *extra, home=None):
    env = dict(os.environ, COLUMNS="200", **({"HOME": str(home)} if home else {}))
    return subprocess.run([sys.executable, "-m", "launcher", "deploy", "-i", str(inv), "--no-build", "--source",
                           str(source), *extra], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_foreign_non_empty_workdir_is_refused_untouched_then_adopted(tmp_path, source):
    work = tmp_path / "papers"
    (work / "drafts").mkdir(parents=True)
    (work / "thesis.tex").write_text("years of work\n")
    (work / "drafts" / "a.txt").write_text("draft\n")
    before = _tree(work)
    p = deploy(_inventory(tmp_path, work), source)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.splitlines() == [
        f"error: deploy refused, nothing was changed: h0: workdir {work} is not empty and was not created by "
        "mae-launch deploy; deploy would delete its files (rsync --delete). Name a new or empty directory, or "
        "pass --adopt to see what would be removed and take the directory over"]
    assert _tree(work) == before and not (work / ".mae-launch-workdir").exists()
    a = deploy(_inventory(tmp_path, work), source, "--adopt")
    assert a.returncode == 0, a.stdout + a.stderr
    assert f"h0: adopting {work}; --delete removes 3 file(s):" in a.stdout
    for name in ("thesis.tex", "drafts/a.txt", "drafts/"):
        assert f"\n  {name}\n" in a.stdout
    assert (work / "launcher" / "code.py").is_file() and not (work / "thesis.tex").exists()
    assert (work / ".mae-launch-workdir").is_file()
    again = deploy(_inventory(tmp_path, work), source, "--force")  # now it is mae-launch's: no question
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("workdir, words", [
    ("~", "is the login user's home"),
    ("/", "is / ;"),
    ("HOME_PARENT", "is an ancestor of the login user's home"),
])
def test_home_root_and_ancestors_are_refused(tmp_path, source, workdir, words):
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    (home / ".bashrc").write_text("x\n")
    workdir = str(home.parent) if workdir == "HOME_PARENT" else workdir
    p = deploy(_inventory(tmp_path, workdir), source, "--adopt", home=home)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
    assert words in p.stderr and "h0: workdir" in p.stderr
    assert (home / ".bashrc").read_text() == "x\n" and not (home / "launcher").exists()


def test_a_venv_inside_the_workdir_that_delete_would_remove_is_refused(tmp_path, source):
    p = deploy(_inventory(tmp_path, tmp_path / "w", venv="myenv"), source)
    assert p.returncode == 2
    assert f"h0: workdir {tmp_path / 'w'} contains paths.venv ({tmp_path / 'w' / 'myenv'})" in p.stderr
    ok = deploy(_inventory(tmp_path, tmp_path / "w2", venv=".venv", data="data/x", output="output"), source)
    assert ok.returncode == 0, ok.stderr


def test_a_deploy_while_a_run_is_alive_is_refused_unless_forced(tmp_path, source):
    work = tmp_path / "w"
    inv = _inventory(tmp_path, work)
    assert deploy(inv, source).returncode == 0
    run = work / "runs" / "r-live"
    run.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (run / "pretrain.h0.pid").write_text(f"{sleeper.pid}\n")
        p = deploy(inv, source)
        assert p.returncode == 2 and "has run(s) r-live still running there" in p.stderr, p.stderr
        assert deploy(inv, source, "--force").returncode == 0
    finally:
        os.killpg(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
    assert deploy(inv, source).returncode == 0  # the run is gone: no question


def test_a_launch_into_a_workdir_that_is_not_mae_launchs_is_refused_untouched(tmp_path):
    runs, home = tmp_path / "records", tmp_path / "home"
    papers = tmp_path / "papers"
    (papers / "data").mkdir(parents=True)
    (papers / "thesis.tex").write_text("years of work\n")
    (home / ".ssh").mkdir(parents=True)
    cases = ((papers, "holds files mae-launch did not put there (e.g. thesis.tex) and was not set up by "
                      "mae-launch deploy"),
             (home, "is / or the login user's home (or above it); name a directory of its own (e.g. ~/mae-launch)"))
    for work, why in cases:
        before = _tree(work)
        inv = _inventory(tmp_path, work)
        p = subprocess.run([sys.executable, "-m", "launcher", "pretrain", "-i", str(inv), "--run-id", "r-guard"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env=dict(os.environ, COLUMNS="200", HOME=str(home), MAE_LAUNCH_RUNS_DIR=str(runs)))
        assert p.returncode == 2, p.stdout + p.stderr
        assert p.stderr.splitlines() == [f"error: pretrain refused, nothing was started: h0: workdir {work} {why}; "
                                         f"name a new directory as its workdir, or deploy there first "
                                         f"(mae-launch deploy -i {inv})"]
        assert _tree(work) == before and not (work / "runs").exists()  # nothing written
        assert not (runs / "r-guard").exists()  # and no run record left behind
