"""Named configs (``mae/configs.yml``) turned into typed command-line flags.

Usage::

    from mae import config
    cfg = config.parse(sys.argv[1:], job="pretrain")   # argparse.Namespace
    cfg.batch_size, cfg.config, cfg.resume

Rules:

* ``--config NAME`` picks a named config (default :data:`DEFAULT_CONFIG` of the job); its values
  replace the defaults and every flag on the command line replaces both.
* Every key of the ``defaults`` section and of the job's ``<job>_defaults`` section is a flag
  ``--key VALUE`` whose type comes from the default value (or the ``types`` section for keys
  whose default is null). Bool flags accept ``true/false/yes/no/1/0`` and stand alone as true
  (``--generated_data``). List flags accept ``3,3,2,2`` or ``[3, 3, 2, 2]``. Keys whose default is
  null accept ``none``.
* ``--resume [CKPT]``: absent → ``cfg.resume is None`` (fresh run); bare → ``""`` (the last valid
  checkpoint in output_dir); with a value → that path.
* ``--print_config`` prints the resolved values as YAML and exits.
* An unknown config name or key, or a value of the wrong type, raises :class:`ConfigError`
  (one line naming it); inside :func:`mae.errors.user_errors` that is exit status 2.

This module does not import torch, so ``--help`` and config errors are instant.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import pathlib
import re
import sys
from typing import Any, Callable

import yaml

from mae.errors import ConfigError

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yml")
JOBS = ("pretrain", "finetune", "validate")
#: which ``<x>_defaults`` section (and which configs' ``job``) each entry point uses
JOB_SECTION = {"pretrain": "pretrain", "finetune": "finetune", "validate": "finetune"}
DEFAULT_CONFIG = {"pretrain": "digits_pretrain", "finetune": "digits_finetune", "validate": "digits_finetune"}
_TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "list": list}
#: keys that take one of a fixed set of values
CHOICES = {
    "device": ("cpu", "cuda", "ipu", "auto"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "loader_mode": ("sync", "async", "rebatch"),
    "gelu_type": ("erf", "tanh"),
    "job": ("pretrain", "finetune"),
}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@functools.lru_cache(maxsize=4)
def _load_file(path: str) -> dict:
    try:
        text = pathlib.Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    data["_help"] = _comments(text)
    return data


def _comments(text: str) -> dict[str, str]:
    """Trailing comments of ``  key: value  # help`` lines: the flag help texts."""
    helps: dict[str, str] = {}
    section = None
    for line in text.splitlines():
        top = re.match(r"^(\w+):", line)
        if top:
            section = top.group(1)
            continue
        m = re.match(r"^  (\w+):[^#]*#\s*(.+)$", line)
        if m and section and section.endswith("defaults"):
            helps.setdefault(m.group(1), m.group(2).strip())
    return helps


def load(path: str | pathlib.Path | None = None) -> dict:
    """The raw configs file as a dict (sections defaults, <job>_defaults, types, configs)."""
    return _load_file(str(path or CONFIG_PATH))


def names(job: str | None = None, path=None) -> list[str]:
    """Names of the configs (of one job's section if ``job`` is given)."""
    configs = load(path).get("configs") or {}
    if job is None:
        return list(configs)
    section = JOB_SECTION[job]
    return [n for n, c in configs.items() if (c or {}).get("job", "pretrain") == section]


def _kind(key: str, default: Any, types: dict) -> type:
    if default is None:
        name = types.get(key, "str")
        if name not in _TYPE_NAMES:
            raise ConfigError(f"{CONFIG_PATH.name}: types.{key} is '{name}'; use int, float, str, bool or list")
        return _TYPE_NAMES[name]
    if isinstance(default, bool):
        return bool
    for kind in (int, float, str, list):
        if isinstance(default, kind):
            return kind
    raise ConfigError(f"{CONFIG_PATH.name}: default of '{key}' has unsupported type {type(default).__name__}")


def coerce(key: str, value: Any, kind: type, nullable: bool) -> Any:
    """Convert ``value`` (YAML value or command-line string) to ``kind``; ValueError if impossible."""
    if value is None or (nullable and isinstance(value, str) and value.lower() in ("none", "null")):
        if nullable:
            return None
        raise ValueError(f"'{key}' may not be null")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"'{key}' expects true or false, got '{value}'")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"'{key}' expects an integer, got '{value}'")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip())
        except ValueError:
            raise ValueError(f"'{key}' expects an integer, got '{value}'") from None
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"'{key}' expects a number, got '{value}'")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"'{key}' expects a number, got '{value}'") from None
    if kind is list:
        if isinstance(value, str):
            text = value.strip()
            if not text.startswith("["):
                text = f"[{text}]"
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ValueError(f"'{key}' expects a list such as 3,3,2,2, got '{value}'") from None
        if not isinstance(value, list):
            raise ValueError(f"'{key}' expects a list such as 3,3,2,2, got '{value}'")
        if any(isinstance(v, (dict, list, bool)) or v is None for v in value):
            raise ValueError(f"'{key}' expects a list of numbers or words such as 3,3,2,2, got '{value}'")
        return value
    if isinstance(value, (dict, list)):
        raise ValueError(f"'{key}' expects a string, got '{value}'")
    value = str(value)
    if key in CHOICES and value not in CHOICES[key]:
        raise ValueError(f"'{key}' must be one of {', '.join(CHOICES[key])}, got '{value}'")
    return value


def schema(job: str = "pretrain", path=None) -> dict[str, tuple[Any, type, bool]]:
    """``{key: (default, type, nullable)}`` for every flag of ``job``."""
    if job not in JOBS:
        raise ConfigError(f"unknown job '{job}'; use one of {', '.join(JOBS)}")
    data = load(path)
    types = data.get("types") or {}
    merged = dict(data.get("defaults") or {})
    merged.update(data.get(f"{JOB_SECTION[job]}_defaults") or {})
    out = {}
    for key, default in merged.items():
        out[key] = (default, _kind(key, default, types), default is None)
    return out


def get(name: str, job: str = "pretrain", path=None) -> dict[str, Any]:
    """Defaults of ``job`` overlaid with the named config ``name`` (values typed)."""
    data = load(path)
    configs = data.get("configs") or {}
    fname = pathlib.Path(path or CONFIG_PATH).name
    if name not in configs:
        known = ", ".join(names(job, path)) or "none"
        raise ConfigError(f"unknown config '{name}' (not in {fname}); {job} configs: {known}")
    entry = configs[name] or {}
    section = JOB_SECTION[job]
    if entry.get("job", "pretrain") != section:
        raise ConfigError(
            f"config '{name}' is a {entry.get('job')} config; run it with python -m mae.{entry.get('job')}"
        )
    spec = schema(job, path)
    values = {k: d for k, (d, _, _) in spec.items()}
    for key, value in entry.items():
        if key not in spec:
            raise ConfigError(f"{fname}: config '{name}' sets unknown key '{key}'; add it to the defaults or remove it")
        _, kind, nullable = spec[key]
        try:
            values[key] = coerce(key, value, kind, nullable)
        except ValueError as err:
            raise ConfigError(f"{fname}: config '{name}': {err}") from None
    return values


class _Parser(argparse.ArgumentParser):
    """argparse that reports problems as one line (via ConfigError) instead of usage + exit."""

    def error(self, message):  # noqa: D401 - argparse hook
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            flag = m.group(1).split()[0]
            key = flag.lstrip("-").split("=")[0]
            raise ConfigError(f"unknown config key '{key}' (flag {flag}); {self.suggest(flag)}")
        raise ConfigError(message)

    def suggest(self, flag: str) -> str:
        """``did you mean --epochs?`` for the closest flag of this parser, else a pointer to --help."""
        if not flag.startswith("--"):
            return "flags start with -- (see --help for the keys)"
        known = [s for s in self._option_string_actions if s.startswith("--")]
        close = difflib.get_close_matches(flag.split("=")[0], known, n=1, cutoff=0.6)
        return f"did you mean {close[0]}?" if close else "see --help for the keys"


def _converter(key: str, kind: type, nullable: bool) -> Callable[[str], Any]:
    def convert(text: str):
        try:
            return coerce(key, text, kind, nullable)
        except ValueError as err:
            raise ConfigError(f"--{key}: {err}") from None

    convert.__name__ = kind.__name__
    return convert


def build_parser(job: str, config_name: str, values: dict, path=None) -> argparse.ArgumentParser:
    """The full flag parser of ``job`` with ``values`` (a named config) as defaults."""
    data = load(path)
    helps = data.get("_help", {})
    configs = ", ".join(names(job, path))
    parser = _Parser(
        prog=f"python -m mae.{job}",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            f"MAE {job}. A named config from mae/configs.yml supplies every default; flags override it.\n"
            f"{job} configs: {configs}.\n"
            "effective batch = batch_size x gradient_accumulation_count x processes (x replica on IPU);\n"
            "lr = blr x effective batch / 256 unless --lr is given."
        ),
        epilog=f"Defaults shown are those of --config {config_name}.",
    )
    parser.add_argument("--config", default=config_name, metavar="NAME", help=f"named config (default {DEFAULT_CONFIG[job]})")
    parser.add_argument(
        "--resume", nargs="?", const="", default=None, metavar="CKPT",
        help="continue from CKPT, or with no value from the last valid checkpoint in output_dir",
    )
    parser.add_argument("--print_config", action="store_true", help="print the resolved config as YAML and exit")
    for key, (_, kind, nullable) in schema(job, path).items():
        kw = dict(default=values[key], type=_converter(key, kind, nullable), dest=key)
        text = helps.get(key, "")
        shown = values[key]
        if kind is bool:
            kw.update(nargs="?", const=True, metavar="true|false")
        elif kind is list:
            kw.update(metavar="A,B,...")
            shown = ",".join(str(v) for v in shown) if shown else "empty"
        else:
            kw.update(metavar=kind.__name__.upper())
        kw["help"] = f"{text} (default: {shown})" if text else f"(default: {shown})"
        if key == "job":
            kw["help"] = argparse.SUPPRESS
        parser.add_argument(f"--{key}", **kw)
    return parser


def parse(argv: list[str] | None = None, job: str = "pretrain", path=None) -> argparse.Namespace:
    """Parse ``argv`` for ``job`` → Namespace holding every config key plus config, resume."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = _Parser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=DEFAULT_CONFIG[job])
    known, _ = pre.parse_known_args(argv)
    values = get(known.config, job, path)
    parser = build_parser(job, known.config, values, path)
    cfg = parser.parse_args(argv)
    if cfg.job != JOB_SECTION[job]:
        raise ConfigError(f"--job {cfg.job} does not fit python -m mae.{job}; drop the flag")
    if cfg.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        raise SystemExit(0)
    del cfg.print_config
    return cfg


def to_dict(cfg: argparse.Namespace | dict) -> dict[str, Any]:
    """Plain dict of a parsed config (for checkpoints' "args" and metrics)."""
    items = cfg.items() if isinstance(cfg, dict) else vars(cfg).items()
    return {k: v for k, v in items if k != "print_config"}
