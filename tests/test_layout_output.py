"""Tables for people never cut a run id or a host name; --json for scripts (runs)."""
import io
import json

import pytest
from rich.console import Console

from cluster_fixtures import run_cli
from launcher import check, layout

RUN_ID = "20261128-170102-pretrain-digits-long-name"
HOST = "gpu-node-017.rack-b.cluster.example.org"


def render(grid: layout.Grid, width: int) -> str:
    buf = io.StringIO()
    layout.show(Console(file=buf, width=width, highlight=False, soft_wrap=True, color_system=None), grid)
    return buf.getvalue()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_keys_are_never_cut(width):
    grid = layout.Grid("runs", ["run", "created", "inventory", "jobs", "git"])
    grid.add(RUN_ID, "2026-11-28T17:01:02Z", "/home/someone/inventories/pod64-with-a-long-name.yml",
             "pretrain: running, finetune: waiting", "0123456789ab")
    text = render(grid, width)
    assert any(RUN_ID in line for line in text.splitlines()), text
    assert "…" not in text


@pytest.mark.parametrize("width", [60, 80])
def test_check_grid_keeps_host_names_whole(width):
    row = {c: (True, "ok") for c in check.CHECKS}
    row["torch"] = (False, "2.14.1 (hosts differ: 2.13.0, 2.14.1)")
    text = render(check.grid({HOST: row, "h2": dict(row)}), width)
    assert any(HOST in line for line in text.splitlines()), text
    assert "hosts differ" in text and "…" not in text
    record = check.records({HOST: row}, ok=False)
    assert record["hosts"][HOST]["torch"] == {"ok": False, "text": "2.14.1 (hosts differ: 2.13.0, 2.14.1)"}
    json.dumps(record)


def test_wide_terminal_gets_a_table():
    grid = layout.Grid("t", ["host", "state"])
    grid.add("h1", "running")
    assert layout.fits(grid, 80)
    lines = render(grid, 80).splitlines()
    assert any("│" in line and "h1" in line and "running" in line for line in lines), lines  # one table row
    wide = layout.Grid("t", ["host", "a", "b", "c", "d", "e", "f", "g"])
    wide.add(HOST, *"abcdefg")
    assert not layout.fits(wide, 60)
    text = render(wide, 60)
    assert text.splitlines()[1] == HOST and "  a: a" in text  # turned: one block per row


@pytest.mark.parametrize("columns", ["60", "80"])
def test_runs_command_at_narrow_widths_and_json(tmp_path, monkeypatch, columns):
    from launcher import runs
    from launcher.options import load

    monkeypatch.setenv("MAE_LAUNCH_RUNS_DIR", str(tmp_path))
    inv = load("inventories/local.yml")
    runs.RunStore().create(runs.RunRecord.new(RUN_ID, inv, ["mae-launch", "pretrain"]), inv.snapshot())
    p = run_cli(["runs"], env_extra={"COLUMNS": columns}, check=0)
    assert any(RUN_ID in line for line in p.stdout.splitlines()), p.stdout
    assert "…" not in p.stdout
    records = json.loads(run_cli(["runs", "--json"], check=0).stdout)
    assert [r["run"] for r in records] == [RUN_ID] and records[0]["jobs"] == [] and "id" not in records[0]
