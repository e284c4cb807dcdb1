"""The benchmark spec (examples-utils schema): parsing, errors with file:line, variants, reductions."""
import math
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher import benchrun, benchspec
from launcher.cli import main

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

train_gen:
  <<: *common
  cmd: python3 -m mae.pretrain --batch_size {bs} --epochs {ep}
  parameters:
    bs: 4,8
    ep: 1,2
  derived:
    per_image_ms:
      expr: 1000 / {throughput} * {bs} / {bs}

train_real_pod16:
  <<: *common
  cmd: python3 -m mae.pretrain --data_path $DATASETS_DIR/x --batch_size {bs} --replicas {r}
  parameters:
    - [bs, r]
    - [6, 4]
    - [8, 16]

digits_conv:
  cmd: python3 -c pass
"""


def write(tmp_path, text, name="benchmarks.yml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_parse_anchors_merge_and_selection(tmp_path):
    spec = benchspec.load(write(tmp_path, SPEC))
    assert list(spec.benchmarks) == ["train_gen", "train_real_pod16", "digits_conv"]  # *options* are anchors
    gen = spec.benchmarks["train_gen"]
    assert gen.data["throughput"].skip == 1 and gen.data["throughput"].reduction_type == "mean"
    assert gen.data["loss"].reduction_type == "final" and gen.data["loss"].skip == 0
    assert gen.output == [("samples/sec", "throughput")]
    assert not gen.needs_dataset and spec.benchmarks["train_real_pod16"].needs_dataset
    assert [b.name for b in spec.select()] == ["train_gen", "train_real_pod16"]  # _conv left out
    assert [b.name for b in spec.select(include_convergence=True)][-1] == "digits_conv"
    assert [b.name for b in spec.select(["digits_conv"])] == ["digits_conv"]  # named: runs


def test_variants_dict_form_is_every_combination_list_form_zips(tmp_path):
    spec = benchspec.load(write(tmp_path, SPEC))
    gen = benchspec.variants(spec.benchmarks["train_gen"])
    assert [v.params for v in gen] == [{"bs": "4", "ep": "1"}, {"bs": "8", "ep": "1"},
                                       {"bs": "4", "ep": "2"}, {"bs": "8", "ep": "2"}]
    assert gen[0].name == "train_gen_bs_4_ep_1"
    assert gen[0].cmd == "python3 -m mae.pretrain --batch_size 4 --epochs 1"
    pod = benchspec.variants(spec.benchmarks["train_real_pod16"])
    assert [v.params for v in pod] == [{"bs": "6", "r": "4"}, {"bs": "8", "r": "16"}]
    assert pod[1].name == "train_real_pod16_bs_8_r_16"


@pytest.mark.parametrize("text, line, words", [
    ("a:\n  cmd: x\n  bogus: 1\n", 3, "unknown key 'bogus'"),
    ("a:\n  description: no command\n", 1, "`cmd` must be"),
    ("a:\n  cmd: x\n  data:\n    t:\n      regexp: '(\\d+'\n", 5, "does not compile"),
    ("a:\n  cmd: x\n  data:\n    t:\n      regexp: 'x(\\d)'\n      reduction_type: median\n", 6, "reduction_type"),
    ("a:\n  cmd: x\n  data:\n    t:\n      regexp: 'x(\\d)'\n      skip: -1\n", 6, "skip"),
    ("a:\n  cmd: x\n  data:\n    t:\n      regexp: '(a)(b)'\n", 5, "2 groups"),
    ("a:\n  cmd: run {batch}\n", 2, "placeholder {batch}"),
    ("a:\n  cmd: x\n  parameters: 3\n", 3, "parameters"),
    ("a:\n  cmd: x\n  output:\n    - [only-label]\n", 4, "[label, metric]"),
    ("a:\n  cmd: x\n  derived:\n    d:\n      expr: '{nope} * 2'\n", 4, "placeholder {nope}"),
    ("a:\n  cmd: x\n  env:\n    BAD-NAME: 1\n", 4, "env"),
    ("a: [\n", 2, "YAML syntax error"),
    ("- just\n- a list\n", 1, "mapping"),
])
def test_bad_spec_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(benchspec.BenchSpecError) as err:
        benchspec.load(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert words in str(err.value)


def test_cli_bad_spec_is_one_line_exit_2(tmp_path):
    path = write(tmp_path, "a:\n  cmd: x\n  bogus: 1\n")
    result = CliRunner().invoke(main, ["bench", "--spec", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}:3: a: unknown key 'bogus' (allowed: cmd, data, "
                                                  "derived, description, env, location, output, parameters, "
                                                  "reference_directory, timeout)"]
    result = CliRunner().invoke(main, ["bench", "--spec", str(write(tmp_path, SPEC)), "--benchmark", "nope"])
    assert result.exit_code == 2 and "no benchmark named 'nope'" in result.output


def test_project_spec_parses():
    spec = benchspec.load(ROOT / "benchmarks.yml")
    names = set(spec.benchmarks)
    for wanted in ("pytorch_mae_train_real_pod16", "pytorch_mae_train_gen_pod16", "pytorch_mae_train_real_pod64",
                   "pytorch_mae_train_gen_pod64", "pytorch_mae_finetune_real_pod16_conv",
                   "pytorch_mae_validation_real_pod16", "pytorch_mae_train_gen_cpu", "pytorch_mae_train_gen_gpu",
                   "pytorch_mae_digits_gen_pipeline_conv"):
        assert wanted in names
    assert all("python3 -m mae." in b.cmd for b in spec.benchmarks.values())
    assert not any("options" in n for n in names)


# --- reductions: examples-utils' semantics ---------------------------------------------------------
VALUES = [5.0, 1.0, 9.0, 3.0]


def test_mean_sorts_and_drops_the_lowest_skip_values():
    assert benchrun.reduce(VALUES, "throughput", "mean", skip=0) == pytest.approx(4.5)
    assert benchrun.reduce(VALUES, "throughput", "mean", skip=1) == pytest.approx((3 + 5 + 9) / 3)  # drops 1.0
    assert benchrun.reduce(VALUES, "throughput", "mean", skip=2) == pytest.approx(7.0)


def test_mean_of_latency_drops_the_highest():
    assert benchrun.reduce(VALUES, "latency", "mean", skip=1) == pytest.approx((5 + 3 + 1) / 3)  # drops 9.0


def test_final_min_value():
    assert benchrun.reduce(VALUES, "loss", "final") == 3.0
    assert benchrun.reduce(VALUES, "loss", "min") == 1.0
    assert benchrun.reduce(VALUES, "loss", "value") == 5.0


def metric(regexp, skip=0, reduction="mean"):
    import re
    return benchspec.Metric(re.compile(regexp), skip, reduction)


def test_extract_reads_stdout_then_stderr_and_fails_like_examples_utils():
    metrics = {"throughput": metric(r"throughput:?[ \t]*(\d+)", skip=1),
               "loss": metric(r"loss:?[ \t]*([e\d\.\-\+]+)", reduction="final")}
    out = "Training Epoch: [0][ 1/3]\tloss 0.9 (0.9)\tthroughput 10.5 (10.5)\n" \
          "Training Epoch: [0][ 2/3]\tloss 0.8 (0.85)\tthroughput 30.0 (20.2)\n"
    err = "loss: 0.5e-1\n"
    results, failed = benchrun.extract(metrics, out, err, 0)
    assert not failed
    assert results["throughput"] == {"mean": pytest.approx(30.0)}  # values 10, 30; lowest dropped
    assert results["loss"] == {"final": pytest.approx(0.05)}        # stderr after stdout
    results, failed = benchrun.extract(metrics, out, err, 0, replicas=4)
    assert results["throughput"]["mean"] == pytest.approx(120.0)
    assert benchrun.extract(metrics, out, err, 1)[1]                 # non-zero exit: empty, failed
    assert benchrun.extract(metrics, "throughput 7\n", "", 0)[0]["throughput"] == {"mean": None}  # <= skip
    nan = benchrun.extract({"loss": metric(r"loss ([\w.]+)", reduction="final")}, "loss nan\n", "", 0)
    assert nan == ({"loss": {"final": None}}, True) and math.isnan(float("nan"))
    assert benchrun.mpirun_processes("mpirun --tag-output --np 8 python3 x") == 8


def test_derived_metrics_use_metrics_and_parameters():
    results = {"throughput": {"mean": 200.0}}
    spec = {"ms_per_batch": {"expr": "1000 * {bs} / {throughput}", "reduction_type": "mean"},
            "broken": {"expr": "{throughput} / 0", "reduction_type": "value"}}
    assert benchrun.derive(spec, results, {"bs": "4"}, 0)  # the broken one fails the variant
    assert results["ms_per_batch"] == {"mean": pytest.approx(20.0)}
    assert results["broken"] == {"value": None}


def test_expand_vars_like_the_shell_then_split():
    env = {"DATASETS_DIR": "/data sets", "X": "1"}
    argv = benchrun.expand('python3 -m mae.pretrain --data_path "$DATASETS_DIR/in" --n ${X} $UNSET', env)
    assert argv == ["python3", "-m", "mae.pretrain", "--data_path", "/data sets/in", "--n", "1", "$UNSET"]


def test_inventory_mode_plans_the_variant_as_that_job():
    from launcher import benchjob, options
    from launcher.plan import plan_job

    argv = benchrun.expand("python3 -m mae.pretrain --config digits_pretrain --generated_data true "
                           "--output_dir /tmp/x --epochs 1", {})
    job, config, args = benchjob.job_of(argv)
    assert (job, config, args) == ("pretrain", "digits_pretrain", ["--generated_data", "true", "--epochs", "1"])
    inv = options.load("inventories/local.yml")
    inv2 = benchjob.inventory_for(inv, job, config, args, {"OMP_NUM_THREADS": "2"})
    plan = plan_job(inv2, "pretrain", "bench-test-1")
    assert plan.program[-4:] == ["--generated_data", "true", "--epochs", "1"]
    assert plan.program[plan.program.index("--output_dir") + 1].endswith("output/bench-test-1/pretrain")
    assert inv2.jobs["pretrain"].env["OMP_NUM_THREADS"].value == "2" and inv.jobs["pretrain"].args == ()
    with pytest.raises(benchjob.UserError, match="without --inventory"):
        benchjob.job_of(["bash", "-c", "true"])
