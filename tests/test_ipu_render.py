"""The POD64 inventory's finetune and validate jobs render poprun commands whose arguments the mae
entry points accept for device ipu (up to the point where the Poplar SDK is needed)."""
import shlex
import subprocess
import sys

import pytest

from mae import config

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _program_argv(job: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "launcher", "render", job, "-i", "inventories/pod64.yml",
                           "--commands"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "poprun" in proc.stdout
    line = next(line.strip() for line in proc.stdout.splitlines() if f"-m mae.{job}" in line)
    argv = shlex.split(line.rstrip("\\"))
    return argv[argv.index(f"mae.{job}") + 1:]


@pytest.mark.parametrize("job", ["finetune", "validate"])
def test_pod64_jobs_render_configs_mae_accepts_on_ipu(job):
    argv = _program_argv(job)
    cfg = config.parse(argv, job=job)
    assert cfg.device == "ipu" and cfg.half and cfg.pipeline == [3, 3, 3, 3] and cfg.replica == 4
    if job == "validate":
        assert cfg.resume
    code = (f"import sys\nsys.modules['poptorch'] = None\nfrom mae import {job}\n"
            f"sys.exit({job}.main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Poplar SDK must be enabled" in proc.stderr, proc.stderr
