"""Program arguments checked before a launch: `python -m mae.checkargs` parses them with the entry
point's own parser, without torch (one `error:` line with did-you-mean, exit 2), and the launcher runs
it as a local process on exactly the arguments a planned job's hosts would get."""
import subprocess
import sys
import time

import pytest

from launcher import prelaunch
from launcher.adjust import adjust
from launcher.errors import UserError
from launcher.inventory import load_inventory
from launcher.options import resolve_inventory_path
from launcher.plan import plan_job


def checkargs(*argv):
    return subprocess.run([sys.executable, "-m", "mae.checkargs", *argv], capture_output=True, text=True, timeout=60)


def test_a_typo_is_one_line_with_did_you_mean_and_exit_2():
    p = checkargs("pretrain", "--config", "digits_pretrain", "--epoch", "2")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().splitlines() == [
        "unknown config key 'epoch' (flag --epoch); did you mean --epochs?"], p.stderr
    assert p.stdout == ""


def test_the_entry_point_itself_suggests_too():
    p = subprocess.run([sys.executable, "-m", "mae.pretrain", "--blrr", "1e-3"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "mae.pretrain: error: unknown config key 'blrr' (flag --blrr); did you mean --blr?"], p.stderr


@pytest.mark.parametrize("argv, reads", [
    (["pretrain", "--data_path", "/d", "--output_dir", "/o", "--epochs", "2"], "1"),
    (["pretrain", "--data_path", "/d", "--generated_data", "true"], "0"),
    (["finetune", "--data_path", "/d", "--finetune", "/c.pth", "--resume"], "1"),
    (["validate", "--data_path", "/d", "--generated_data", "true", "--resume", "/c.pth"], "1"),  # only pretrain generates
])
def test_a_good_line_passes_and_says_whether_the_job_reads_its_data(argv, reads):
    p = checkargs(*argv)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [f"reads_data={reads}"]


def test_a_wrong_value_and_an_unknown_config_are_refused_too():
    p = checkargs("pretrain", "--epochs", "two")
    assert p.returncode == 2 and "--epochs" in p.stderr and "integer" in p.stderr
    p = checkargs("finetune", "--config", "digits_pretrain")
    assert p.returncode == 2 and "is a pretrain config" in p.stderr


def test_it_imports_no_torch_and_starts_fast():
    code = ("import sys, time; t = time.perf_counter(); from mae import checkargs; "
            "checkargs.check('pretrain', ['--epochs', '2']); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(time.perf_counter() - t)")
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - started < 10  # a whole Python start, import and parse (torch alone takes longer)


def _plan(inventory: str, job: str, args=()):
    inv = load_inventory(resolve_inventory_path(inventory))
    if args:
        inv = adjust(inv, args=tuple(args), jobs=(job,))
    return plan_job(inv, job, "20260101-000000-abcd")


def test_the_launcher_checks_the_planned_program_line():
    plan = _plan("gpu-cluster", "pretrain", ["--epoch", "2"])
    with pytest.raises(UserError) as err:
        prelaunch.check_arguments(plan)
    text = str(err.value)
    assert text.startswith("pretrain not started: python -m mae.pretrain refuses its arguments: "), text
    assert "unknown config key 'epoch' (flag --epoch); did you mean --epochs?" in text
    assert "gpu-cluster.yml" in text and "\n" not in text
    # the same job with the right flag passes, and reads its data path (--data_path is on the line)
    assert prelaunch.check_arguments(_plan("gpu-cluster", "pretrain", ["--epochs", "2"])) is True
    assert prelaunch.check_arguments(_plan("gpu-cluster", "pretrain", ["--generated_data"])) is False
