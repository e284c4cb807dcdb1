"""The IPU path's pure parts, without the Poplar SDK: optimizer state conversion (resume), host-side
mixup, exact validation shards and sums, classifier placement, the SDK sentence, mae.align's CPU half."""
import subprocess
import sys
import textwrap

import pytest
import torch

from mae import config, engine_ipu, ipu_mixup, ipu_stages, ipu_state, models_vit, optim
from mae.models_mae import create_model

pytestmark = pytest.mark.sdk_compat


def _trained_adamw(model, steps=3):
    opt = optim.build_adamw(model, config.parse(["--weight_decay", "0.05"]), lr=1e-3)
    for i in range(steps):
        opt.zero_grad()
        loss, _, _ = model(torch.randn(2, 3, 16, 16), mask_ratio=0.75, noise=torch.rand(2, 16))
        loss.backward()
        opt.step()
    return opt


def test_adam_state_round_trips_through_the_ipu_names():
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch4")
    opt = _trained_adamw(model)
    sd = opt.state_dict()
    names = ipu_state.index_names(opt, model)
    ipu = ipu_state.torch_to_ipu(sd, names)
    assert "Accl1___model.blocks.0.attn.qkv.weight" in ipu and "Step___model.norm.weight" in ipu
    assert float(ipu["Step___model.blocks.0.attn.qkv.weight"][0]) == 3.0
    back = ipu_state.ipu_to_torch(ipu, sd["param_groups"], names)
    assert set(back["state"]) == set(sd["state"])
    for k, entry in sd["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(back["state"][k][key], entry[key])
        assert float(back["state"][k]["step"]) == float(entry["step"])
    # a resumed optimizer continues exactly like the original one
    twin = create_model("mae_vit_tiny_patch4")
    twin.load_state_dict(model.state_dict())
    opt2 = optim.build_adamw(twin, config.parse([]), lr=1e-3)
    opt2.load_state_dict(back)
    x, noise = torch.randn(2, 3, 16, 16), torch.rand(2, 16)
    for m, o in ((model, opt), (twin, opt2)):
        o.zero_grad()
        m(x, mask_ratio=0.75, noise=noise)[0].backward()
        o.step()
    for (n, a), (_, b) in zip(model.named_parameters(), twin.named_parameters()):
        assert torch.equal(a, b), n


def test_half_keeps_first_moments_in_fp16():
    model = create_model("mae_vit_tiny_patch4")
    opt = _trained_adamw(model, steps=1)
    ipu = ipu_state.torch_to_ipu(opt.state_dict(), ipu_state.index_names(opt, model), half=True)
    assert ipu["Accl1___model.blocks.0.attn.qkv.weight"].dtype == torch.float16
    assert ipu["Accl2___model.blocks.0.attn.qkv.weight"].dtype == torch.float32
    assert ipu_state.torch_to_ipu({"state": {}}, {}) == {}


def test_host_collate_mixes_on_the_host_and_smooths_without_mixup():
    from timm.data import Mixup

    batch = [(torch.randn(3, 8, 8), i % 4) for i in range(8)]
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4)
    imgs, targets = ipu_mixup.HostCollate(mixup, 4, 0.1, half=True)(batch)
    assert imgs.dtype == torch.float16 and targets.shape == (8, 4)
    assert torch.allclose(targets.float().sum(1), torch.ones(8), atol=1e-2)
    imgs, targets = ipu_mixup.HostCollate(None, 4, 0.1)(batch)
    assert imgs.dtype == torch.float32 and targets[0].argmax() == 0
    assert targets[0, 0] == pytest.approx(0.925) and targets[0, 1] == pytest.approx(0.025)
    logits = torch.randn(8, 4)
    hard = torch.nn.functional.cross_entropy(logits, torch.arange(8) % 4)
    assert ipu_mixup.soft_target_cross_entropy(logits, ipu_mixup.one_hot_smooth(torch.arange(8) % 4, 4)) == \
        pytest.approx(float(hard), rel=1e-5)


@pytest.mark.parametrize("n, world, multiple", [(23, 1, 8), (23, 2, 8), (23, 4, 6), (5, 4, 4), (0, 2, 4)])
def test_padded_shards_count_every_image_once(n, world, multiple):
    data = [(torch.zeros(1), i) for i in range(n)]
    shards = [ipu_mixup.PaddedShard(data, r, world, multiple) for r in range(world)]
    assert all(len(s) % multiple == 0 for s in shards)
    seen = [s[i][1] for s in shards for i in range(len(s)) if s[i][2]]
    assert sorted(seen) == list(range(n))


def test_ipu_evaluation_sums_exactly_over_instances():
    """engine_ipu.evaluate on a real classifier standing in for the inference model, two instances
    whose sums are added: the totals equal a plain evaluation of the whole set."""
    torch.manual_seed(0)
    model = models_vit.vit_tiny_patch4(num_classes=3).eval()
    data = [(torch.randn(3, 16, 16), i % 3) for i in range(19)]
    info = type("Info", (), {"is_main": False})()
    results = []
    for rank in range(2):
        shard = ipu_mixup.PaddedShard(data, rank, 2, 4)
        loader = torch.utils.data.DataLoader(shard, batch_size=4)
        results.append(engine_ipu.evaluate(model, loader, info, lambda v: list(v)))
    n = sum(r["n"] for r in results)
    c1 = sum(r["top1"] * r["n"] / 100 for r in results)
    with torch.no_grad():
        logits = model(torch.stack([x for x, _ in data]))
    labels = torch.tensor([y for _, y in data])
    assert n == 19 and c1 == pytest.approx(float((logits.argmax(1) == labels).sum()))


def test_classifier_stages_cover_every_parameter():
    with torch.device("meta"):
        model = models_vit.vit_base_patch16()
    stages = ipu_stages.assign_stages([3, 3, 3, 3], len(model.blocks), 0, classifier=True)
    assert stages["head"] == 3 and stages["fc_norm"] == 3 and stages["blocks.0"] == 0
    for pname, _ in model.named_parameters():
        assert pname in ("cls_token", "pos_embed") or any(pname.startswith(s + ".") for s in stages), pname


def _blocked(code: str) -> subprocess.Popen:
    script = "import sys\nsys.modules['poptorch'] = None\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_blocked(code: str):
    proc = _blocked(code)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ipu_jobs_without_sdk_exit_2_with_the_sdk_sentence():
    jobs = (("finetune", ["--config", "vit_base_finetune"]),
            ("validate", ["--config", "vit_base_finetune", "--resume", "x.pth", "--data_path", "d"]),
            ("pretrain", ["--config", "vit_base_pod16", "--generated_data"]))
    procs = [_blocked(f"from mae import {job}\nsys.exit({job}.main({argv!r}))") for job, argv in jobs]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, err
        assert "Poplar SDK must be enabled" in lines[0] and "cpu or cuda only" not in lines[0]


def test_pretrain_on_ipu_goes_through_the_config_checks_first():
    proc = _run_blocked("from mae import pretrain\nsys.exit(pretrain.main(['--config', 'vit_base_pod16', "
                        "'--generated_data', '--batch_size', '0']))")
    assert proc.returncode == 2 and "batch_size must be at least 1" in proc.stderr


def test_align_runs_the_cpu_half_and_says_the_ipu_half_needs_the_sdk():
    proc = _run_blocked("from mae import align\nsys.exit(align.main(['--steps', '2', '--batch_size', '2']))")
    assert proc.returncode == 3, proc.stderr  # only one half ran: never the 0 of 'aligned'
    assert "cpu step 1: loss" in proc.stdout and "needs the Poplar SDK" in proc.stdout


def test_align_comparison_passes_equal_traces_and_fails_far_ones():
    from mae import align

    model, images, noise = align.make_inputs(2, 2)
    trace = align.cpu_trace(model, images, noise, lr=0.05)
    rows, ok = align.compare(trace, trace, "fp32")
    assert ok and all(r["loss_rel"] == 0 for r in rows)
    far = [(loss * 1.5, {k: g * 2 for k, g in grads.items()}) for loss, grads in trace]
    rows, ok = align.compare(trace, far, "fp16")
    assert not ok and not rows[0]["pass"]


def test_ipu_config_keys_carry_the_reference_defaults():
    cfg = config.parse(["--config", "vit_base_finetune"], job="finetune")
    assert cfg.device == "ipu" and cfg.half and cfg.pipeline == [3, 3, 3, 3] and cfg.layer_decay == 0.65
    assert (cfg.available_memory_proportion, cfg.rebatched_worker_size, cfg.optimizer_update_freq) == (0.15, 128, 10)
    assert cfg.half_partials and cfg.aggregate_instances and not cfg.compile_only and cfg.loader_mode == "rebatch"
    assert optim.effective_batch(cfg) == 8192


class _HostTraining:
    """Stands in for a poptorch.trainingModel on the host: one call = forward, backward and an AdamW
    step of a real tiny MAE; setOptimizer records the lr pushed to the device."""

    def __init__(self, model, opt):
        self.model, self.opt, self.pushed = model, opt, []

    def setOptimizer(self, popt):
        self.pushed.append([g["lr"] for g in popt.param_groups])

    def __call__(self, imgs, target, keep, restore, mask):
        from mae import ipu_masking

        self.opt.zero_grad()
        loss = ipu_masking.fp32_loss(ipu_masking.matmul_forward(self.model, imgs, keep, restore), target, mask)
        loss.backward()
        self.opt.step()
        return loss.detach().reshape(1)


def test_ipu_pretrain_epoch_pushes_the_schedule_every_n_steps_and_prints_reference_lines(capsys):
    import re

    from mae import metrics

    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch4")
    cfg = config.parse(["--model", "mae_vit_tiny_patch4", "--print_freq", "2", "--optimizer_update_freq", "3",
                        "--epochs", "2", "--warmup_epochs", "1"])
    opt = optim.build_adamw(model, cfg, lr=1e-3)
    training = _HostTraining(model, opt)
    from mae import ipu_masking

    collate = ipu_masking.MaskingCollate(model, 0.75)
    loader = [ipu_masking.host_inputs(collate, torch.randn(2, 3, 16, 16), torch.rand(2, 16), 0.75) for _ in range(7)]
    info = type("Info", (), {"is_main": True, "rank": 0, "world_size": 1})()
    jsonl = type("J", (), {"records": [], "write": lambda self, r: self.records.append(r)})()
    stats = engine_ipu.pretrain_one_epoch(training, loader, opt, [1.0, 0.5], 0, cfg, info, 1e-3, jsonl,
                                          lambda v: list(v))
    assert len(training.pushed) == 3  # steps 0, 3, 6
    assert training.pushed[1][1] == pytest.approx(training.pushed[1][0] * 0.5)  # layer-decay scale kept
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("Training Epoch: [0][")]
    assert len(lines) == 4 and all(re.search(r"throughput:?[ \t]*(\d+)", line) for line in lines)
    assert stats["images"] == 14 and [r["step"] for r in jsonl.records] == [0, 2, 4, 6]
    bad = [ipu_masking.host_inputs(collate, torch.full((2, 3, 16, 16), float("nan")), torch.rand(2, 16), 0.75)]
    from mae.errors import TrainingError

    with pytest.raises(TrainingError, match="loss is nan at epoch 0 step 0"):
        engine_ipu.pretrain_one_epoch(training, bad, opt, [1.0, 1.0], 0, cfg, info, 1e-3, jsonl,
                                      lambda v: list(v))
    del metrics
