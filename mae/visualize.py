"""``python -m mae.visualize --checkpoint CKPT --output_dir DIR [--data_path DIR] [--metrics FILE]``

Renders the pictures of any run: ``reconstruction_<epoch>.png`` (original / masked /
reconstruction / reconstruction + visible patches, for the fixed validation batch and fixed
masking noise) from a pretraining checkpoint, and ``curves.png`` (loss, lr, validation top-1)
from the run's ``metrics.jsonl`` (by default the one beside the checkpoint). A finetuning
checkpoint, or an encoder-only one, has no decoder: only the curves are drawn for it.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from types import SimpleNamespace

from mae.errors import CheckpointError, ConfigError, DataError, user_errors


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mae.visualize", description=__doc__.split("\n\n")[1])
    p.add_argument("--checkpoint", required=True, help="checkpoint.pth or model_<epoch>.pth of a run")
    p.add_argument("--output_dir", required=True, help="where the PNG files are written")
    p.add_argument("--data_path", default=None,
                   help="dataset root with validation/<class>/* (default: the run's data_path)")
    p.add_argument("--metrics", default=None, help="metrics.jsonl (default: the one beside the checkpoint)")
    p.add_argument("--model", default=None, help="model factory name (default: the run's)")
    p.add_argument("--input_size", type=int, default=None, help="image side (default: the run's)")
    p.add_argument("--mask_ratio", type=float, default=None, help="mask ratio (default: the run's)")
    return p.parse_args(argv)


def _run_config(args, ckpt: dict) -> SimpleNamespace:
    saved = ckpt.get("args") or {}
    if not isinstance(saved, dict):
        saved = vars(saved) if hasattr(saved, "__dict__") else {}
    cfg = SimpleNamespace(
        model=args.model or saved.get("model"),
        input_size=args.input_size or saved.get("input_size", 224),
        mask_ratio=args.mask_ratio if args.mask_ratio is not None else saved.get("mask_ratio", 0.75),
        norm_pix_loss=saved.get("norm_pix_loss", False),
        gelu_type=saved.get("gelu_type", "erf"),
        data_path=args.data_path or saved.get("data_path"),
        generated_data=bool(saved.get("generated_data", False)) and not args.data_path,
        generated_size=saved.get("generated_size", 64),
        seed=saved.get("seed", 0),
    )
    return cfg


def render(args) -> list[pathlib.Path]:
    from mae import checkpoint, pictures

    ckpt = checkpoint.load(args.checkpoint)
    cfg = _run_config(args, ckpt)
    out = pathlib.Path(args.output_dir)
    ckpt_path = pathlib.Path(args.checkpoint)
    metrics = pathlib.Path(args.metrics) if args.metrics else ckpt_path.parent / "metrics.jsonl"
    if args.metrics and not metrics.is_file():
        raise DataError(f"metrics file {metrics} not found; give the metrics.jsonl of the run or omit --metrics")
    state = ckpt["model"]
    written: list[pathlib.Path] = []
    has_decoder = any(k.startswith("decoder_") for k in state)
    if has_decoder:
        written.append(_reconstruction(cfg, state, ckpt, out, args.checkpoint))
    else:
        kind = "a classifier" if any(k.startswith("head.") for k in state) else "an encoder-only"
        print(f"{args.checkpoint} is {kind} checkpoint without a decoder: no reconstructions, curves only",
              flush=True)
    if metrics.is_file():
        written.append(pictures.save_curves(metrics, out / "curves.png", f"{cfg.model}: {ckpt_path.parent}"))
    elif not has_decoder:
        raise DataError(f"nothing to draw: {args.checkpoint} has no decoder and {metrics} does not exist; "
                        "pass --metrics FILE")
    for path in written:
        print(f"wrote {path}", flush=True)
    return written


def _reconstruction(cfg, state, ckpt, out, ckpt_name) -> pathlib.Path:
    from mae import models_mae, pictures

    if not cfg.model:
        raise ConfigError(f"{ckpt_name} does not name its model; pass --model (e.g. mae_vit_digits)")
    try:
        model = models_mae.create_model(cfg.model, img_size=cfg.input_size, norm_pix_loss=cfg.norm_pix_loss,
                                        gelu_type=cfg.gelu_type)
    except KeyError as err:
        raise ConfigError(f"{err.args[0]} (from {ckpt_name}; pass --model)") from None
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"{ckpt_name} does not fit model {cfg.model} "
                              f"({str(err).splitlines()[-1].strip()[:160]}); pass the right --model") from None
    if result.missing_keys or result.unexpected_keys:
        bad = sorted(result.missing_keys + result.unexpected_keys)
        raise CheckpointError(f"{ckpt_name} does not fit model {cfg.model} (keys {', '.join(bad[:6])}"
                              f"{' and more' if len(bad) > 6 else ''}); pass the right --model")
    fallback = None
    if not cfg.data_path or not (pathlib.Path(cfg.data_path) / "validation").is_dir():
        if cfg.data_path and not cfg.generated_data:
            raise DataError(f"{cfg.data_path}/validation not found; pass --data_path DIR holding validation/<class>/*")
        from mae.data import GeneratedDataset

        fallback = GeneratedDataset(pictures.N_IMAGES, cfg.input_size, seed=cfg.seed)
    epoch = ckpt.get("epoch", 0)
    return pictures.render_run(model, cfg, out, epoch, None, fallback)[0]


def main(argv=None) -> int:
    args = parse(argv)
    with user_errors("mae.visualize"):
        render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
