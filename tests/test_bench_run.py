"""`mae-launch bench` end to end: a tiny real pretraining variant, and a failing one beside it."""
import csv
import json
from pathlib import Path

import pytest

from launcher import benchresults, benchrun, benchspec

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
common_options: &common
  data:
    throughput:
      regexp: 'throughput:?[ \\t]*(\\d+)'
      skip: 1
    loss:
      reduction_type: final
      regexp: 'loss:?[ \\t]*([e\\d\\.\\-\\+]+)'
  output:
    - [samples/sec, throughput]
    - [loss, loss]

tiny_train_gen:
  <<: *common
  env:
    OMP_NUM_THREADS: "1"
    PYTHONPATH: {root}
  parameters:
    batch_size: 16
  cmd: >-
    python3 -m mae.pretrain --config digits_pretrain --generated_data true --generated_size 64
      --batch_size {{batch_size}} --epochs 1 --warmup_epochs 0 --print_freq 1 --num_workers 0
      --output_dir {out}
  derived:
    ms_per_image:
      expr: 1000 / {{throughput}}

broken_gen:
  <<: *common
  cmd: python3 -c "import sys; print('throughput 5'); sys.exit(3)"
"""


@pytest.mark.slow
def test_bench_runs_a_real_variant_and_records_a_failing_one(tmp_path, capsys):
    spec_path = tmp_path / "benchmarks.yml"
    spec_path.write_text(SPEC.format(root=ROOT, out=tmp_path / "out"))
    spec = benchspec.load(spec_path)
    folder = benchresults.new_run_dir(tmp_path / "results")
    results = benchrun.run_all(spec.select(), folder, timeout=300)
    benchresults.write(folder, spec_path, results)

    good, bad = results
    assert good.ok, good.log_tail
    assert good.variant == "tiny_train_gen_batch_size_16"
    assert good.results["throughput"]["mean"] > 0
    assert 0 < good.results["loss"]["final"] < 10
    assert good.results["ms_per_image"]["mean"] == pytest.approx(1000 / good.results["throughput"]["mean"])
    assert not bad.ok and bad.exitcode == 3 and "throughput 5" in bad.log_tail
    assert bad.results["throughput"] == {"mean": None}

    doc = json.loads((folder / "results.json").read_text())
    assert [v["variant"] for v in doc["variants"]] == ["tiny_train_gen_batch_size_16", "broken_gen"]
    rows = list(csv.DictReader((folder / "results.csv").open()))
    assert rows[0]["ok"] == "True" and float(rows[0]["throughput"]) > 0 and rows[1]["ok"] == "False"
    summary = (folder / "summary.md").read_text()
    assert "FAILED: exit status 3" in summary and "throughput 5" in summary
    assert (folder / "logs" / "tiny_train_gen_batch_size_16" / "stdout").read_text().count("Training Epoch: [0][") == 4
