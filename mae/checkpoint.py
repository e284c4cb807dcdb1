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

A kill at any moment of a save leaves the previous ``checkpoint.pth`` intact: the new bytes go to
``.checkpoint.pth.tmp-<pid>-<n>`` and only a complete, fsynced file is renamed over the old one.
"""
from __future__ import annotations

import itertools
import os
import pathlib
import re

from mae.errors import CheckpointError, warn

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
