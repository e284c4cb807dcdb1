"""mae's whole IPU call path on the SDK-free PopTorch STAND-IN (tests/standins/poptorch_standin):
make_options, wrap_*, data_loader, mae.ipu_run and mae.engine_ipu, through the real entry points.

The stand-in is not PopTorch: it enforces PopTorch's documented constraints and runs the graph on
the CPU; what only an IPU can tell (numerics, memory, compile time) is out of its reach.
"""
from __future__ import annotations

import json

import pytest
import torch

from mae import config, data, ipu, models_vit
from mae.models_mae import create_model

DIGITS_MAE = ["--pipeline", "[2,2,1,1]", "--ipus_per_replica", "2", "--batch_size", "8",
              "--gradient_accumulation_count", "7"]           # 4 forward stages -> 7 training stages
DIGITS_VIT = ["--pipeline", "[2,2]", "--ipus_per_replica", "2", "--batch_size", "8",
              "--gradient_accumulation_count", "3"]           # 2 forward stages -> 3 training stages


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "digits"
    data.write_digits(out, input_size=16, seed=0)
    return out


def _spy(standin, monkeypatch):
    """Record every executor the stand-in builds: (kind, executor)."""
    built = []
    for kind in ("trainingModel", "inferenceModel"):
        real = getattr(standin, kind)

        def make(*args, _real=real, _kind=kind, **kwargs):
            ex = _real(*args, **kwargs)
            built.append((_kind, ex))
            return ex
        monkeypatch.setattr(standin, kind, make)
    return built


def test_digits_pretrain_finetune_validate_on_ipu_run_to_a_top1_line(poptorch_standin, digits, tmp_path,
                                                                     monkeypatch, capsys):
    from mae import finetune, pretrain, validate

    built = _spy(poptorch_standin, monkeypatch)
    common = ["--data_path", str(digits), "--device", "ipu", "--num_workers", "0", "--epochs", "1",
              "--warmup_epochs", "0", "--print_freq", "20"]
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    assert pretrain.main(["--config", "digits_pretrain", *common, *DIGITS_MAE, "--output_dir", str(pre)]) == 0
    out = capsys.readouterr().out
    assert "pretrain mae_vit_digits on IPU: 1 replica(s) x 2 IPU(s)" in out and "Training Epoch: [0] done" in out
    assert [k for k, _ in built] == ["trainingModel"] and built[0][1].isCompiled()
    built.clear()
    args = ["--config", "digits_finetune", *common, *DIGITS_VIT, "--output_dir", str(ft),
            "--finetune", str(pre / "checkpoint.pth"), "--blr", "2.0e-2"]
    assert finetune.main(args) == 0
    out = capsys.readouterr().out
    assert "Accuracy of the network on the 360 test images:" in out
    kinds = [k for k, _ in built]
    assert kinds == ["trainingModel", "inferenceModel"]
    assert isinstance(built[1][1].options.strategy, poptorch_standin.ShardedExecution)  # the reference's eval
    built.clear()
    assert finetune.main([*args, "--compile_only", "true"]) == 0
    assert [k for k, ex in built if ex.isCompiled()] == ["trainingModel", "inferenceModel"]
    capsys.readouterr()
    assert validate.main(["--config", "digits_finetune", *common, *DIGITS_VIT, "--output_dir", str(ft),
                          "--resume", str(ft / "checkpoint.pth")]) == 0
    out = capsys.readouterr().out
    result = json.loads((ft / "validation.json").read_text())
    assert result["n"] == 360 and f"Accuracy of the network on the 360 test images: {result['top1']:.1f}%" in out
    ckpt = torch.load(ft / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert set(ckpt["optimizer"]["state"])  # the Adam moments came back from the "device"


def test_pretrain_compile_only_builds_the_training_model(poptorch_standin, digits, tmp_path, monkeypatch, capsys):
    from mae import pretrain

    built = _spy(poptorch_standin, monkeypatch)
    assert pretrain.main(["--config", "digits_pretrain", "--data_path", str(digits), "--device", "ipu",
                          "--num_workers", "0", *DIGITS_MAE, "--output_dir", str(tmp_path), "--compile_only",
                          "true"]) == 0
    assert [k for k, ex in built if ex.isCompiled()] == ["trainingModel"]
    assert "compiled; executable cache" in capsys.readouterr().out


def _vit_cfg(*extra):
    return config.parse(["--config", "digits_finetune", "--device", "ipu", *DIGITS_VIT, *extra], job="finetune")


def test_inference_is_sharded_so_one_device_iteration_compiles(poptorch_standin):
    """Pipelined inference needs device_iterations >= stages; the reference evaluates sharded."""
    cfg = _vit_cfg("--device_iterations", "1")
    model = models_vit.create_model("vit_digits", num_classes=10, img_size=16)
    inference = ipu.wrap_inference(model, cfg)
    inference.compile(torch.randn(8, 3, 16, 16))
    assert isinstance(inference.options.strategy, poptorch_standin.ShardedExecution)
    # what the old options did: the stand-in refuses it, as PopART does
    opts = ipu.make_options(cfg, 2, training=False)
    opts.setExecutionStrategy(poptorch_standin.PipelinedExecution(poptorch_standin.AutoStage.AutoIncrement))
    pipelined = poptorch_standin.inferenceModel(ipu.ClassifierEval(model), options=opts)
    with pytest.raises(poptorch_standin.PoptorchError, match="batchesPerStep"):
        pipelined.compile(torch.randn(8, 3, 16, 16))


def test_half_pretraining_step_takes_the_reference_loss_scale(poptorch_standin):
    """fp16 model, loss scale 2^23 (the pod configs): the loss is fp32, so the scaled loss fits."""
    torch.manual_seed(0)
    cfg = config.parse(["--config", "vit_base_pod16", "--model", "mae_vit_tiny_patch4", "--input_size", "16",
                        "--pipeline", "[]", "--ipus_per_replica", "1", "--replica", "1", "--rts", "false",
                        "--gradient_accumulation_count", "1", "--batch_size", "2"], job="pretrain")
    model = create_model("mae_vit_tiny_patch4", norm_pix_loss=True)
    from mae import ipu_masking, optim

    training = ipu.wrap_for_training(model, optim.build_adamw(model, cfg, 1e-3), cfg)
    assert training._optimizer.loss_scaling == 8388608.0
    collate = ipu_masking.MaskingCollate(model, 0.75, half=True)
    inputs = ipu_masking.host_inputs(collate, torch.randn(2, 3, 16, 16), torch.rand(2, 16), 0.75, half=True)
    training.compile(*inputs)  # refused by the stand-in when the loss is fp16
    loss = training(*inputs)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    # an fp16 loss under the same scale is what the stand-in (and fp16 arithmetic) refuses
    half_loss = poptorch_standin.trainingModel(_Fp16Loss(model), options=ipu.make_options(cfg, 1),
                                               optimizer=ipu.to_poptorch_optimizer(
                                                   optim.build_adamw(model, cfg, 1e-3), cfg))
    with pytest.raises(poptorch_standin.PoptorchError, match="does not fit the fp16 loss"):
        half_loss.compile(*inputs)


class _Fp16Loss(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, imgs, target, keep, restore, mask):
        import poptorch

        from mae import ipu_masking

        pred = ipu_masking.matmul_forward(self.model, imgs, keep, restore)
        loss = (((pred - target.half()) ** 2).mean(-1) * mask.half()).sum() / mask.half().sum()
        return poptorch.identity_loss(loss, reduction="none")


def test_the_standin_is_not_poptorch_to_the_product():
    """Without the fixture, the product finds no poptorch (the stand-in is never on its path)."""
    import importlib.util
    import sys

    assert "poptorch" not in sys.modules or getattr(sys.modules["poptorch"], "STANDIN", False) is False
    spec = importlib.util.find_spec("poptorch")
    if spec is not None:  # the SDK's own poptorch (make install-ipu): never the stand-in
        assert "standins" not in (spec.origin or "")
        return
    with pytest.raises(ipu.SDKNotEnabled):
        ipu.require_poptorch()


def test_half_step_computes_the_loss_from_fp32_values(poptorch_standin):
    """fp16 model, pixel errors whose squares pass fp16's 65504: the loss stays finite and equals the
    fp32 computation (the reference's ``MaeLoss``: ``pred.float()``)."""
    from mae import ipu_masking

    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch4", norm_pix_loss=False).half()
    imgs = torch.randn(2, 3, 16, 16) * 400.0
    inputs = ipu_masking.host_inputs(model, imgs, torch.rand(2, 16), 0.75, half=True)
    loss = ipu.IPUTrainingStep(model)(*inputs)
    pred = ipu_masking.matmul_forward(model, *[inputs[i] for i in (0, 2, 3)])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert float(loss) == pytest.approx(float(ipu_masking.fp32_loss(pred, inputs[1], inputs[4])), rel=1e-6)


def test_align_exits_0_only_when_both_halves_ran_and_agreed(poptorch_standin, capsys):
    """On the stand-in both halves run (fp32): the IPU half's code path and the exit 0 of agreement."""
    from mae import align

    assert align.main(["--steps", "2", "--batch_size", "2", "--half", "false"]) == 0
    out = capsys.readouterr().out
    assert "step 1: loss cpu" in out and out.strip().splitlines()[-1].startswith("PASS: fp32")
