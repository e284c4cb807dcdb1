"""Evaluate a finetuned classifier: ``python -m mae.validate --config NAME --resume CKPT``.

Top-1, top-5 and mean cross-entropy loss on ``<data_path>/validation`` with the reference
evaluation transform (resize input_size/0.875 bicubic, centre crop). Under torchrun every rank
evaluates the samples rank, rank + world, ... and the sums are all-reduced: each image counts
exactly once whatever the world size. Rank 0 prints the reference lines

    * Acc@1 <top1> Acc@5 <top5> loss <loss>
    Accuracy of the network on the <n> test images: <top1>%

and writes ``<output_dir>/validation.json`` ``{"top1", "top5", "loss", "n", "checkpoint"}``, the same
record in ``metrics.jsonl`` and TensorBoard scalars ``val/top1``, ``val/top5``, ``val/loss`` beside it.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

from mae.errors import CheckpointError, ConfigError, DataError, DeviceError, user_errors


def load_classifier(model, path, model_name: str) -> dict:
    """Load a finetuned classifier checkpoint into ``model`` (errors name the mismatched keys)."""
    from mae import checkpoint

    ckpt = checkpoint.load(path)
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    target = model.state_dict()
    if "head.weight" not in state:
        raise CheckpointError(
            f"{path} has no classifier head (head.weight): it is a pretraining checkpoint; finetune it first "
            f"(python -m mae.finetune --finetune {path}) and validate the finetuned checkpoint")
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    wrong = sorted(k for k in set(target) & set(state) if tuple(target[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:5])}{' and more' if len(keys) > 5 else ''}"
                 for label, keys in (("wrong shape", wrong), ("missing", missing), ("unexpected", unexpected))
                 if keys]
        raise CheckpointError(f"{path} does not fit model {model_name} ({'; '.join(parts)}); "
                              "pass the --config / --model / --nb_classes / --input_size it was finetuned with")
    model.load_state_dict(state)
    return ckpt


def run(cfg) -> dict:
    import torch

    from mae import augment, data, dist, engine_finetune, metrics
    from mae.finetune import build_model

    if cfg.resume is None or cfg.resume == "":
        raise CheckpointError("validate needs --resume CKPT: the finetuned checkpoint to evaluate")
    if not cfg.data_path:
        raise DataError("no data: pass --data_path DIR holding validation/<class>/*")
    info = dist.init(cfg.device)
    try:
        if info.device_type == "ipu":
            raise DeviceError("validation runs on cpu or cuda in this package; pass --device cpu, cuda or auto")
        device = torch.device(info.device)
        dataset = data.build_dataset(cfg.data_path, "validation", augment.eval_transform(cfg.input_size),
                                     cfg.check_images)
        if len(dataset.classes) > cfg.nb_classes:
            raise DataError(f"{cfg.data_path}/validation has {len(dataset.classes)} classes but nb_classes is "
                            f"{cfg.nb_classes}; pass --nb_classes {len(dataset.classes)}")
        model = build_model(cfg)
        ckpt = load_classifier(model, cfg.resume, cfg.model)
        model.to(device)
        if info.is_main:
            print(f"validate {cfg.model} from {cfg.resume} (epoch {ckpt.get('epoch', '?')}) on {len(dataset)} "
                  f"images, {info.world_size} process(es) on {device.type}", flush=True)
        start = time.time()
        stats = engine_finetune.evaluate(
            model, dataset, batch_size=cfg.batch_size, device=device, rank=info.rank,
            world_size=info.world_size, distributed=info.distributed, precision=cfg.precision,
            num_workers=cfg.num_workers, print_freq=cfg.print_freq, is_main=info.is_main)
        if stats["n"] != len(dataset):  # exact counting is the contract
            raise RuntimeError(f"evaluated {stats['n']} images of {len(dataset)}")
        if info.is_main:
            for line in engine_finetune.summary_lines(stats):
                print(line, flush=True)
            print(f"Validation time {time.time() - start:.1f}s", flush=True)
            if cfg.output_dir:
                out = pathlib.Path(cfg.output_dir)
                out.mkdir(parents=True, exist_ok=True)
                tmp = out / ".validation.json.tmp"
                tmp.write_text(json.dumps({**stats, "checkpoint": str(cfg.resume)}, indent=1) + "\n")
                tmp.replace(out / "validation.json")
                with metrics.Tracker(out, "validate", cfg) as tracker:
                    tracker.write({"type": "validate", "job": "validate", **stats, "checkpoint": str(cfg.resume)})
        return stats
    finally:
        dist.cleanup(info)


def main(argv: list[str] | None = None) -> int:
    from mae import config

    with user_errors("mae.validate"):
        cfg = config.parse(argv, job="validate")
        if cfg.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {cfg.batch_size}")
        run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
