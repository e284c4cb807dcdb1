"""PopTorch's documented constraints between options, checked by mae before compiling (plain Python,
no SDK): each rule stops with one sentence naming the key, and the reference configs pass."""
from __future__ import annotations

import pytest

from mae import config, ipu_checks, ipu_stages
from mae.errors import ConfigError

pytestmark = pytest.mark.sdk_compat


def _cfg(name, *flags, job="pretrain"):
    return config.parse(["--config", name, *flags], job=job)


def _mae_ipus(pipeline=(3, 3, 3, 3, 2, 2, 2, 2)):
    return list(ipu_stages.assign_stages(list(pipeline), 12, 8).values())


def _vit_ipus(pipeline=(3, 3, 3, 3)):
    return list(ipu_stages.assign_stages(list(pipeline), 12, 0, classifier=True).values())


def test_reference_configs_pass_every_rule():
    ipu_checks.check(_cfg("vit_base_pod16"), _mae_ipus(), training=True)
    ipu_checks.check(_cfg("vit_base_pod64"), _mae_ipus(), training=True, instances=4)
    ft = _cfg("vit_base_finetune", job="finetune")
    ipu_checks.check(ft, _vit_ipus(), training=True)
    ipu_checks.check(ft, _vit_ipus(), training=False)  # sharded inference: any device_iterations


def test_stages_are_counted_as_poptorch_merges_them():
    assert ipu_checks.forward_stages(_mae_ipus(), auto_increment=True) == 8   # decoder revisits IPUs 0-3
    assert ipu_checks.forward_stages(_vit_ipus(), auto_increment=True) == 4
    assert ipu_checks.forward_stages(_vit_ipus(), auto_increment=False) == 4
    assert ipu_checks.forward_stages([], auto_increment=True) == 1


def test_pipelined_training_needs_accumulation_of_at_least_the_training_stages():
    with pytest.raises(ConfigError, match=r"`gradient_accumulation_count` is 14 .* at least 15"):
        ipu_checks.check(_cfg("vit_base_pod16", "--gradient_accumulation_count", "14"), _mae_ipus(), training=True)
    ipu_checks.check(_cfg("vit_base_pod16", "--gradient_accumulation_count", "15"), _mae_ipus(), training=True)


def test_pipelined_inference_needs_device_iterations_of_at_least_the_stages():
    ft = _cfg("vit_base_finetune", job="finetune")
    with pytest.raises(ConfigError, match=r"`device_iterations` is 1 .* at least 4"):
        ipu_checks.check(ft, _vit_ipus(), training=False, pipelined=True)
    ipu_checks.check(_cfg("vit_base_finetune", "--device_iterations", "4", job="finetune"), _vit_ipus(),
                     training=False, pipelined=True)


def test_replicas_must_split_over_the_poprun_instances():
    with pytest.raises(ConfigError, match=r"`replica` is 16 but poprun runs 3 instances"):
        ipu_checks.check(_cfg("vit_base_pod64"), _mae_ipus(), training=True, instances=3)


def test_rts_needs_replication():
    with pytest.raises(ConfigError, match=r"`rts` .* `replica` is 1"):
        ipu_checks.check(_cfg("vit_base_pod16", "--replica", "1"), _mae_ipus(), training=True)
    ipu_checks.check(_cfg("vit_base_pod16", "--replica", "1"), _vit_ipus(), training=False)  # inference: no RTS


def test_loss_scale_must_be_positive_and_finite():
    for bad in ("0", "-1", "inf"):
        with pytest.raises(ConfigError, match="`loss_scale`"):
            ipu_checks.check(_cfg("vit_base_pod16", "--loss_scale", bad), _mae_ipus(), training=True)


def test_same_as_ipu_stages_cannot_revisit_an_ipu():
    with pytest.raises(ConfigError, match="revisits an IPU"):
        ipu_checks.check_stage_ids(_mae_ipus(), auto_increment=False)
    ipu_checks.check_stage_ids(_mae_ipus(), auto_increment=True)
    ipu_checks.check_stage_ids(_vit_ipus(), auto_increment=False)


def test_a_broken_rule_stops_the_job_with_one_line_exit_2(poptorch_standin, capsys):
    from mae import pretrain

    with pytest.raises(SystemExit) as stop:
        pretrain.main(["--config", "vit_base_pod16", "--generated_data", "--gradient_accumulation_count", "2",
                       "--model", "mae_vit_tiny_patch4", "--input_size", "16", "--pipeline", "[1,1,1,0]",
                       "--ipus_per_replica", "2", "--generated_size", "64", "--num_workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "`gradient_accumulation_count` is 2" in err[0], err
