"""`make bench` (bench/report.py) fails when a benchmark script fails, and still writes its report.

The report script runs for real from a copy of bench/ whose bench_remap.py is replaced by one that
exits 3 (the failure under test); the other scripts are not run (`--only remap`)."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_failing_benchmark_script_fails_make_bench_with_the_report_written(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    for name in ("report.py", "report_md.py"):
        shutil.copy(ROOT / "bench" / name, bench / name)
    (bench / "bench_remap.py").write_text("import sys\nprint('remap: no compiler here')\nsys.exit(3)\n")
    p = subprocess.run([sys.executable, str(bench / "report.py"), "--quick", "--only", "remap",
                        "--out", str(tmp_path / "results")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "bench_remap failed" in p.stderr
    (report,) = (tmp_path / "results").glob("*/report.md")
    text = report.read_text()
    assert "Not measured** (bench_remap: exit 3)" in text and "remap: no compiler here" in text


def test_only_names_known_benchmarks():
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), "--only", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--only nope: name some of data, remap, pretrain, deploy" in p.stderr
