"""Named configs → typed flags; bad names/keys/values → one line, exit status 2."""
import subprocess
import sys
import types

import pytest
import yaml

from mae import config, optim
from mae.errors import ConfigError

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_pretrain(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "mae.pretrain", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


REFERENCE = {
    "vit_base_pod16": dict(model="mae_vit_base_patch16", half=True, rts=True, batch_size=6,
                           gradient_accumulation_count=172, replica=4, ipus_per_replica=4, epochs=1600,
                           warmup_epochs=40, blr=1.5e-4, weight_decay=0.05, loss_scale=8388608.0,
                           mask_ratio=0.75, norm_pix_loss=True, input_size=224,
                           pipeline=[3, 3, 3, 3, 2, 2, 2, 2], gelu_type="tanh", num_workers=48,
                           saveckp_freq=4, print_freq=15, output_dir="checkpoint_mae_vit_base", device="ipu"),
    "vit_base_pod64": dict(model="mae_vit_base_patch16", half=True, rts=False, batch_size=6,
                           gradient_accumulation_count=43, replica=16, ipus_per_replica=4, epochs=1600,
                           warmup_epochs=40, blr=1.5e-4, weight_decay=0.05, loss_scale=8388608.0,
                           mask_ratio=0.75, norm_pix_loss=True, input_size=224,
                           pipeline=[3, 3, 3, 3, 2, 2, 2, 2], gelu_type="tanh", num_workers=64,
                           saveckp_freq=4, print_freq=10, output_dir="checkpoint_mae_vit_base_pod64", device="ipu"),
}
FINETUNE_REFERENCE = dict(model="vit_base_patch16", half=True, batch_size=8, gradient_accumulation_count=256,
                          replica=4, ipus_per_replica=4, epochs=100, warmup_epochs=5, blr=5e-4, weight_decay=0.05,
                          loss_scale=1024.0, input_size=224, pipeline=[3, 3, 3, 3], num_workers=64,
                          saveckp_freq=4, print_freq=10, output_dir="checkpoint_mae_vit_base_finetune",
                          layer_decay=0.65, drop_path=0.1, reprob=0.25, mixup=0.8, cutmix=1.0, device="ipu")


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_pretrain_configs(name):
    values = config.get(name, "pretrain")
    for key, want in REFERENCE[name].items():
        assert values[key] == want, key


def test_reference_finetune_config():
    values = config.get("vit_base_finetune", "finetune")
    for key, want in FINETUNE_REFERENCE.items():
        assert values[key] == want, key


def test_every_config_loads_and_defaults_exist():
    for job in config.JOBS:
        assert config.DEFAULT_CONFIG[job] in config.names(job)
    for name in config.names("pretrain"):
        values = config.get(name, "pretrain")
        assert values["device"] in config.CHOICES["device"] and values["model"]
    for name in config.names("finetune"):
        assert config.get(name, "finetune")["job"] == "finetune"
    assert {"vit_base_cpu", "vit_base_gpu", "digits_pretrain"} <= set(config.names("pretrain"))
    assert "digits_finetune" in config.names("finetune")


def test_global_batch_and_lr_same_on_pod16_and_pod64():
    """The reference computed lr per poprun instance; here it comes from the global batch."""
    pod16 = types.SimpleNamespace(**config.get("vit_base_pod16"))
    pod64 = types.SimpleNamespace(**config.get("vit_base_pod64"))
    assert optim.effective_batch(pod16, world_size=1) == 4128
    assert optim.effective_batch(pod64, world_size=4) == 4128  # 4 poprun instances
    assert optim.resolve_lr(pod16, 1) == optim.resolve_lr(pod64, 4) == pytest.approx(1.5e-4 * 4128 / 256)
    gpu = types.SimpleNamespace(**config.get("vit_base_gpu"))
    assert optim.effective_batch(gpu, world_size=8) == 4096
    gpu.lr = 1e-3
    assert optim.resolve_lr(gpu, 8) == 1e-3


def test_flags_override_with_types():
    cfg = config.parse(["--config", "vit_base_pod64", "--batch_size", "3", "--generated_data",
                        "--norm_pix_loss", "false", "--pipeline", "4,4", "--blr=2e-4", "--saveckp_freq", "7",
                        "--print_freq", "3", "--lr", "0.01", "--output_dir", "out"], job="pretrain")
    assert cfg.batch_size == 3 and cfg.gradient_accumulation_count == 43 and cfg.replica == 16
    assert cfg.generated_data is True and cfg.norm_pix_loss is False
    assert cfg.pipeline == [4, 4] and cfg.blr == 2e-4 and cfg.lr == 0.01
    assert cfg.saveckp_freq == 7 and isinstance(cfg.print_freq, int)
    assert cfg.config == "vit_base_pod64" and cfg.resume is None and cfg.output_dir == "out"


def test_resume_forms():
    assert config.parse(["--resume"]).resume == ""
    assert config.parse(["--resume", "a/b.pth"]).resume == "a/b.pth"
    assert config.parse(["--resume", "--epochs", "2"]).epochs == 2


@pytest.mark.parametrize("argv, needle", [
    (["--config", "nope"], "'nope'"),
    (["--bogus_key", "1"], "'bogus_key'"),
    (["--batch", "3"], "'batch'"),  # no abbreviations
    (["--batch_size", "abc"], "batch_size"),
    (["--device", "tpu"], "device"),
    (["--config", "vit_base_finetune"], "finetune"),
    (["--pipeline", "{a: 1}"], "pipeline"),
])
def test_errors_name_the_culprit(argv, needle):
    with pytest.raises(ConfigError, match=needle):
        config.parse(argv, job="pretrain")


def test_bad_yaml_key_is_reported(tmp_path):
    path = tmp_path / "c.yml"
    data = yaml.safe_load(config.CONFIG_PATH.read_text())
    data["configs"]["digits_pretrain"]["colour"] = 3
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        config.get("digits_pretrain", "pretrain", path=path)


@pytest.mark.parametrize("argv, needle", [
    (["--config", "nope"], "unknown config 'nope'"),
    (["--no_such_key", "1"], "unknown config key 'no_such_key'"),
    (["--epochs", "1.5"], "epochs"),
    (["--device", "ipu", "--generated_data"], "Poplar SDK"),
])
def test_cli_errors_exit_2_with_one_line(argv, needle):
    proc = run_pretrain(*argv)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_help_and_print_config():
    proc = run_pretrain("--help")
    assert proc.returncode == 0
    assert "effective batch" in proc.stdout and "--gradient_accumulation_count" in proc.stdout
    proc = run_pretrain("--config", "vit_base_pod16", "--batch_size", "2", "--print_config")
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed["batch_size"] == 2 and printed["pipeline"] == [3, 3, 3, 3, 2, 2, 2, 2]
