"""IPU placement (pure) and the one-line stop when the Poplar SDK is not enabled."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from mae import ipu
from mae.errors import ConfigError, DeviceError, UserError
from mae.models_mae import create_model

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat

REFERENCE_PIPELINE = [3, 3, 3, 3, 2, 2, 2, 2]


def test_reference_placement_vit_base():
    stages = ipu.assign_stages(REFERENCE_PIPELINE, 12, 8)
    expect = {"patch_embed": 0}
    expect.update({f"blocks.{i}": i // 3 for i in range(12)})  # 0-2 on IPU0 ... 9-11 on IPU3
    expect["norm"] = 3
    expect["decoder_embed"] = 0
    expect.update({f"decoder_blocks.{i}": i // 2 for i in range(8)})  # 0-1 on IPU0 ... 6-7 on IPU3
    expect["decoder_norm"] = 3
    expect["decoder_pred"] = 3
    assert stages == expect
    assert list(stages) == list(expect)  # execution order: every entry starts the next stage
    assert ipu.ipus_per_replica(REFERENCE_PIPELINE, 12, 8) == 4


def test_placement_norms_follow_last_block_and_pred_goes_last():
    stages = ipu.assign_stages([2, 1, 0, 3, 0, 1], 3, 4)
    assert [stages[f"blocks.{i}"] for i in range(3)] == [0, 0, 1]
    assert stages["patch_embed"] == 0 and stages["norm"] == 1
    assert [stages[f"decoder_blocks.{i}"] for i in range(4)] == [0, 0, 0, 2]
    assert stages["decoder_embed"] == 0 and stages["decoder_norm"] == 2 and stages["decoder_pred"] == 2
    # an empty first stage: the embedding still travels with block 0
    stages = ipu.assign_stages([0, 2, 1, 1], 2, 2)
    assert stages["patch_embed"] == 1 and stages["decoder_embed"] == 0 and stages["decoder_pred"] == 1


def test_encoder_only_uses_the_whole_list():
    stages = ipu.assign_stages([3, 3, 3, 3], 12, 0)
    assert stages["patch_embed"] == 0 and stages["blocks.11"] == 3 and stages["norm"] == 3
    assert not any(name.startswith("decoder") for name in stages)
    assert ipu.ipus_per_replica([3, 3, 3, 3], 12, 0) == 4


@pytest.mark.parametrize("pipeline, enc, dec, words", [
    ([3, 3, 3, 3, 2, 2, 2, 2], 11, 8, "encoder stages hold 12 blocks but the model has 11"),
    ([3, 3, 3, 3, 2, 2, 2, 1], 12, 8, "decoder stages hold 7 blocks but the model has 8"),
    ([3, 3, 3, 3, 2, 2, 2], 12, 6, "even length"),
    ([], 12, 8, "non-empty list"),
    ([3, -1, 3, 3, 2, 2, 2, 2], 8, 8, "whole number"),
    ([3, 2.5, 3, 3, 2, 2, 2, 2], 12, 8, "whole number"),
])
def test_bad_pipelines_name_the_key_in_one_line(pipeline, enc, dec, words):
    with pytest.raises(ConfigError) as info:
        ipu.assign_stages(pipeline, enc, dec)
    msg = str(info.value)
    assert "`pipeline`" in msg and words in msg and "\n" not in msg
    assert isinstance(info.value, UserError)


def test_every_stage_name_is_a_real_module_and_covers_every_parameter():
    with torch.device("meta"):
        model = create_model("mae_vit_base_patch16")
    stages = ipu.assign_stages(REFERENCE_PIPELINE, len(model.blocks), len(model.decoder_blocks))
    for name in stages:
        model.get_submodule(name)  # raises if the name is wrong
    tokens = {"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"}
    for pname, _ in model.named_parameters():
        assert pname in tokens or any(pname.startswith(s + ".") for s in stages), pname


def test_require_poptorch_without_sdk_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "poptorch", None)  # importing it now fails, as on a machine without the SDK
    with pytest.raises(ipu.SDKNotEnabled) as info:
        ipu.require_poptorch()
    assert isinstance(info.value, DeviceError) and isinstance(info.value, UserError)
    msg = str(info.value)
    assert "Poplar SDK" in msg and "\n" not in msg
    with pytest.raises(ipu.SDKNotEnabled):  # the wrapper stops before touching the model
        ipu.wrap_for_training(torch.nn.Linear(2, 2), None, {"pipeline": REFERENCE_PIPELINE})


def test_device_ipu_without_sdk_exits_2_with_one_line(tmp_path):
    """A real process: the entry-point error handling turns the missing SDK into exit 2, one line."""
    script = textwrap.dedent("""
        import sys
        sys.modules["poptorch"] = None  # in case this machine has the SDK enabled
        from mae.errors import user_errors
        from mae import ipu
        with user_errors("mae.pretrain"):
            ipu.require_poptorch()
        print("not reached")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Poplar SDK" in lines[0] and lines[0].startswith("mae.pretrain: error:")
    assert "Traceback" not in proc.stderr and "not reached" not in proc.stdout


def test_config_reader_accepts_mappings_and_objects():
    assert ipu._get({"replica": 4}, "replica") == 4
    assert ipu._get(SimpleNamespace(replica=16), "replica") == 16
    assert ipu._get({}, "rts", False) is False
