"""Evaluate a finetuned classifier: ``python -m mae.validate --config NAME --resume CKPT``.

Top-1, top-5 and mean cross-entropy loss on ``<data_path>/validation`` with the reference
evaluation transform (resize input_size/0.875 bicubic, centre crop). Under torchrun every rank
evaluates the samples rank, rank + world, ... and the sums are all-reduced; on IPU
(``device: ipu``) an inference model runs each instance's shard, padded to whole device batches
with padding weighing nothing, and the sums go over every replica and instance: each image counts
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

from mae.checkpoint import load_classifier  # noqa: F401 (part of this module's API)
from mae.errors import CheckpointError, ConfigError, DataError, user_errors


def run(cfg) -> dict:
    from mae import job

    if cfg.resume is None or cfg.resume == "":
        raise CheckpointError("validate needs --resume CKPT: the finetuned checkpoint to evaluate")
    if not cfg.data_path:
        raise DataError("no data: pass --data_path DIR holding validation/<class>/*")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {cfg.batch_size}")
    j = job.start(cfg)
    stats = _validate(cfg, j)
    job.finish(j)
    return stats


def _validate(cfg, j) -> dict:
    from mae import augment, data, engine_finetune
    from mae.finetune import build_model

    dataset = data.build_dataset(cfg.data_path, "validation", augment.eval_transform(cfg.input_size),
                                 cfg.check_images)
    if len(dataset.classes) > cfg.nb_classes:
        raise DataError(f"{cfg.data_path}/validation has {len(dataset.classes)} classes but nb_classes is "
                        f"{cfg.nb_classes}; pass --nb_classes {len(dataset.classes)}")
    model = build_model(cfg)
    ckpt = load_classifier(model, cfg.resume, cfg.model)
    j.say(f"validate {cfg.model} from {cfg.resume} (epoch {ckpt.get('epoch', '?')}) on {len(dataset)} images, "
          f"{j.info.world_size} process(es) on {j.info.device_type}, precision {j.precision.name}")
    start = time.time()
    if j.ipu:
        from mae import ipu_run

        stats = ipu_run.evaluate(model, dataset, cfg, j, compile_only=cfg.compile_only)
        if not stats:
            j.say("compiled; nothing evaluated (--compile_only)")
            return {}
    else:
        from mae import torch_run

        stats = torch_run.evaluate(model.to(j.info.device), dataset, cfg, j)
    if stats["n"] != len(dataset):  # exact counting is the contract
        raise RuntimeError(f"evaluated {stats['n']} images of {len(dataset)}")
    if j.info.is_main:
        for line in engine_finetune.summary_lines(stats):
            print(line, flush=True)
        print(f"Validation time {time.time() - start:.1f}s", flush=True)
        _write(cfg, stats)
    return stats


def _write(cfg, stats: dict) -> None:
    if not cfg.output_dir:
        return
    out = pathlib.Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".validation.json.tmp"
    tmp.write_text(json.dumps({**stats, "checkpoint": str(cfg.resume)}, indent=1) + "\n")
    tmp.replace(out / "validation.json")
    from mae import metrics

    with metrics.Tracker(out, "validate", cfg) as tracker:
        tracker.write({"type": "validate", "job": "validate", **stats, "checkpoint": str(cfg.resume)})


def main(argv: list[str] | None = None) -> int:
    from mae import config

    with user_errors("mae.validate"):
        run(config.parse(argv, job="validate"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
