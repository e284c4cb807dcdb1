"""Checkpoints: atomic save, finding the last valid one, loading, resuming.

Files in an output directory::

    checkpoint.pth      latest state (replaced atomically at every save)
    model_<epoch>.pth   kept copies every saveckp_freq epochs and at the end (a hard link when possible)

A checkpoint is a dict ``{"model", "optimizer", "epoch", "scaler", "args"}`` (pretraining adds
nothing else); ``epoch`` is the last COMPLETED epoch (0-based), so a resume starts at epoch + 1.
"model" holds the unwrapped model's state dict with the reference key names.

API::

    save_atomic(obj, path)                  temp file in the same folder, fsync, os.replace, fsync dir
    save_checkpoint(output_dir, state, keep_copy)  checkpoint.pth (+ model_<epoch>.pth) → path
    load(path) -> dict                      CheckpointError (one line) when missing or unreadable
    candidates(output_dir) -> [paths]       newest first
    find_last_valid(output_dir) -> path | None
    load_last_valid(output_dir) -> (path, ckpt) | (None, None)
    resolve_resume(resume, output_dir) -> (path, ckpt) | (None, None)
                                            resume None: fresh run; "": the last valid checkpoint in
                                            output_dir (fresh run when there is none); else that file.
    resume(resume, output_dir, model, optimizer, scaler=None, model_name=..., log=print) -> start | None
                                            the one resume step of every training job
    load_pretrained(model, path, model_name) -> summary line   MAE encoder -> classifier (finetuning)
    load_classifier(model, path, model_name) -> ckpt          finetuned classifier (validation)

A kill at any moment of a save leaves the previous ``checkpoint.pth`` intact: the new bytes go to
``.checkpoint.pth.tmp-<pid>-<n>`` and only a complete, fsynced file is renamed over the old one.
"""
from __future__ import annotations

import itertools
import os
import pathlib
import re
import warnings

from mae.errors import CheckpointError, warn

DECODER_PREFIXES = ("decoder_", "mask_token")
CLASSIFIER_PREFIXES = ("head.", "fc_norm.")

LATEST = "checkpoint.pth"
_COPY = re.compile(r"^model_(\d+)\.pth$")
_counter = itertools.count()


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_counter)}")


def _remove_stale_temps(path: pathlib.Path) -> None:
    """Temp files of this target left by a process that died (its pid is gone)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        m = re.match(r".*\.tmp-(\d+)-\d+$", tmp.name)
        if m and int(m.group(1)) != os.getpid():
            try:
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


def save_atomic(obj, path) -> pathlib.Path:
    """``torch.save(obj)`` to ``path`` so that readers see the old file or the complete new one."""
    import torch

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _link_atomic(src: pathlib.Path, dst: pathlib.Path) -> bool:
    tmp = _tmp_name(dst)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    _fsync_dir(dst.parent)
    return True


def save_checkpoint(output_dir, state: dict, keep_copy: bool) -> pathlib.Path:
    """Write ``state`` to ``output_dir/checkpoint.pth`` and, with keep_copy, ``model_<epoch>.pth``."""
    output_dir = pathlib.Path(output_dir)
    latest = save_atomic(state, output_dir / LATEST)
    if keep_copy:
        copy = output_dir / f"model_{int(state['epoch'])}.pth"
        if not _link_atomic(latest, copy):
            save_atomic(state, copy)
    return latest


def load(path, map_location="cpu") -> dict:
    """Load a checkpoint written by this project; CheckpointError when missing or unreadable."""
    import torch

    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; give an existing file or omit the value of --resume")
    try:
        with warnings.catch_warnings():  # torch 2.0's weights_only loader warns about TypedStorage
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure: not a usable checkpoint
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable ({detail[:120]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"checkpoint {path} holds no 'model' entry; it was not written by mae")
    return ckpt


def candidates(output_dir) -> list[pathlib.Path]:
    """checkpoint.pth, then model_<epoch>.pth from the highest epoch down (existing files only)."""
    output_dir = pathlib.Path(output_dir)
    if not output_dir.is_dir():
        return []
    out = [output_dir / LATEST] if (output_dir / LATEST).is_file() else []
    copies = []
    for p in output_dir.iterdir():
        m = _COPY.match(p.name)
        if m and p.is_file():
            copies.append((int(m.group(1)), p))
    out.extend(p for _, p in sorted(copies, reverse=True))
    return out


def load_last_valid(output_dir, map_location="cpu"):
    """``(path, ckpt)`` of the newest loadable checkpoint in ``output_dir``, or ``(None, None)``.

    checkpoint.pth is always at least as new as every kept copy; when it is unreadable the
    kept copies are tried from the highest epoch down (each failure is reported).
    """
    for path in candidates(output_dir):
        try:
            ckpt = load(path, map_location)
        except CheckpointError as err:
            warn(f"{err}; trying an older one")
            continue
        if "epoch" not in ckpt:
            warn(f"checkpoint {path} has no 'epoch'; trying an older one")
            continue
        return path, ckpt
    return None, None


def find_last_valid(output_dir):
    """Path of the newest loadable checkpoint in ``output_dir`` or None."""
    return load_last_valid(output_dir)[0]


def resolve_resume(resume, output_dir, map_location="cpu"):
    """Interpret ``--resume``: None → (None, None); "" → last valid in output_dir; else that path."""
    if resume is None:
        return None, None
    if resume == "":
        path, ckpt = load_last_valid(output_dir, map_location)
        if path is None:
            print(f"no valid checkpoint in {output_dir}; starting from scratch", flush=True)
        return path, ckpt
    return pathlib.Path(resume), load(resume, map_location)


def strip_module(state: dict) -> dict:
    """State-dict keys without DDP's ``module.`` prefix."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def resume(resume_arg, output_dir, model, optimizer=None, scaler=None, model_name: str = "the model",
           log=print) -> int | None:
    """Load model, optimizer (and loss-scaler) state of ``--resume`` into the built objects; return the
    epoch to start from, or None when nothing was loaded (a fresh run). The one resume step of pretraining and finetuning on
    every device: on IPU the host optimizer's state (Adam moments, step) is converted afterwards."""
    path, ckpt = resolve_resume(resume_arg, output_dir)
    if ckpt is None:
        return None
    try:
        model.load_state_dict(strip_module(ckpt["model"]))
        if optimizer is not None and ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        first = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        raise CheckpointError(f"checkpoint {path} does not fit model {model_name} ({first[-1].strip()[:160]}); "
                              "resume with the config it was written with") from None
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    epoch = ckpt.get("epoch")
    if epoch is None or optimizer is None or not ckpt.get("optimizer"):
        return 0
    if log is not None:
        log(f"resumed from {path} (epoch {epoch} done)")
    return int(epoch) + 1


def _names(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _fit_problems(state: dict, target: dict, expected: set) -> list[str]:
    """Sentences naming missing, unexpected and wrongly shaped keys (empty when ``state`` fits)."""
    missing = expected - set(state)
    unexpected = set(state) - set(target)
    wrong = {k: (tuple(state[k].shape), tuple(target[k].shape)) for k in expected & set(state)
             if tuple(state[k].shape) != tuple(target[k].shape)}
    parts = []
    if wrong:
        shown = [k for k in target if k in wrong][:3]  # model order: patch_embed first
        parts.append(f"{len(wrong)} tensors of the wrong shape: " + ", ".join(
            f"{k} {'x'.join(map(str, wrong[k][0]))} in the checkpoint vs {'x'.join(map(str, wrong[k][1]))}"
            for k in shown) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""))
    if missing:
        parts.append(f"missing: {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected: {_names(unexpected)}")
    return parts


def load_pretrained(model, path, model_name: str = "the model") -> str:
    """Load MAE encoder weights from ``path`` into the classifier ``model``; return a summary line.

    Decoder keys are dropped, the position embedding is interpolated when the image size differs,
    and exactly the head / fc_norm keys must be left missing (the head starts from
    trunc_normal(2e-5)). CheckpointError (one sentence naming the keys) when the checkpoint is a
    classifier or does not fit the model's architecture.
    """
    import torch
    from timm.layers import trunc_normal_

    from mae.pos_embed import interpolate_pos_embed

    if not pathlib.Path(path).is_file():
        raise CheckpointError(f"pretraining checkpoint {path} not found; give --finetune an existing file "
                              "(or --finetune none to start from random initialisation)")
    ckpt = load(path)
    state = strip_module(ckpt["model"])
    head_keys = [k for k in state if k.startswith(CLASSIFIER_PREFIXES)]
    if head_keys:
        raise CheckpointError(
            f"{path} is a classifier checkpoint (it holds {_names(head_keys)}), not pretraining weights; "
            f"give --finetune an MAE pretraining checkpoint, or continue this finetuning with --resume {path}")
    target = model.state_dict()
    dropped = [k for k in state if k.startswith(DECODER_PREFIXES) or (k.startswith("norm.") and k not in target)]
    for k in dropped:
        del state[k]
    resized = False
    if "pos_embed" in state and state["pos_embed"].shape[-1] == target["pos_embed"].shape[-1]:
        resized = interpolate_pos_embed(model, state)
    parts = _fit_problems(state, target, {k for k in target if not k.startswith(CLASSIFIER_PREFIXES)})
    if parts:
        raise CheckpointError(
            f"{path} does not fit model {model_name} ({'; '.join(parts)}); "
            "choose the --model whose encoder the pretraining used (e.g. vit_digits for mae_vit_digits)")
    result = model.load_state_dict(state, strict=False)
    want = {k for k in target if k.startswith(CLASSIFIER_PREFIXES)}
    if set(result.missing_keys) != want or result.unexpected_keys:  # cannot happen after the checks above
        raise CheckpointError(f"{path}: unexpected load result (missing {_names(result.missing_keys)})")
    with torch.no_grad():
        trunc_normal_(model.head.weight, std=2e-5)
        torch.nn.init.zeros_(model.head.bias)
    epoch = ckpt.get("epoch")
    return (f"loaded pretraining weights from {path}" + (f" (epoch {epoch})" if epoch is not None else "")
            + f": {len(state)} tensors, dropped {len(dropped)} decoder/norm tensors"
            + (", position embedding interpolated" if resized else "")
            + f"; new {_names(want, 4)}")


def load_classifier(model, path, model_name: str) -> dict:
    """Load a finetuned classifier checkpoint into ``model`` (errors name the mismatched keys)."""
    ckpt = load(path)
    state = strip_module(ckpt["model"])
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
