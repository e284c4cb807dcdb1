"""Benchmark specs in the schema of Graphcore's examples-utils (`benchmarks.yml`): parse, check, expand.

    spec = load(path)                      -> Spec (BenchSpecError "file:line: ..." on a bad entry)
    spec.select(names, include_convergence) -> [Benchmark] to run
    variants(benchmark)                     -> [Variant(name, params, cmd)]

Schema (one mapping of benchmark name -> entry):
  - names containing ``options`` are YAML anchors merged into entries, never run;
  - names containing ``_conv`` run only when named or with include_convergence;
  - names containing ``gen`` or ``synth`` need no dataset; the others need $DATASETS_DIR;
  - an entry: ``cmd`` (required), ``description``, ``env`` (name -> value), ``parameters``
    (list form: first row the names, each further row one variant, zipped; dict form: name ->
    comma-separated values, every combination), ``data`` (metric -> ``regexp``, ``skip`` (0),
    ``reduction_type`` (mean | final | min | value; mean by default)), ``derived``
    (metric -> ``expr`` with {metric} and {parameter} placeholders), ``output`` ([label, metric]
    pairs), ``timeout`` (seconds), ``location`` (folder under the spec's folder to run in).
  - keys examples-utils reads for IPU set-up (requirements_path, pre_run_commands, ...) are accepted
    and not acted on: `mae-launch deploy` prepares hosts.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from launcher import yamlfile
from launcher.errors import UserError

REDUCTIONS = ("mean", "final", "min", "value")
ENTRY_KEYS = {"cmd", "description", "env", "parameters", "data", "derived", "output", "timeout", "location",
              "reference_directory"}
IGNORED_KEYS = {"requirements_path", "requirements_file", "pre_run_commands", "allow_wandb", "generated",
                "synthetic", "reattempts", "reattempt_regexp"}
METRIC_KEYS = {"regexp", "skip", "reduction_type"}
DERIVED_KEYS = {"expr", "reduction_type"}


class BenchSpecError(UserError):
    """The benchmark spec cannot be read or does not match the schema."""


@dataclass
class Metric:
    regexp: re.Pattern
    skip: int = 0
    reduction_type: str = "mean"


@dataclass
class Benchmark:
    name: str
    cmd: str
    folder: Path
    description: str = ""
    env: dict = field(default_factory=dict)
    parameters: object = None
    data: dict = field(default_factory=dict)          # name -> Metric
    derived: dict = field(default_factory=dict)       # name -> {"expr", "reduction_type"}
    output: list = field(default_factory=list)        # [(label, metric)]
    timeout: float | None = None

    @property
    def needs_dataset(self) -> bool:
        return "gen" not in self.name and "synth" not in self.name

    @property
    def convergence(self) -> bool:
        return "_conv" in self.name


@dataclass
class Variant:
    name: str
    params: dict
    cmd: str


@dataclass
class Spec:
    path: Path
    benchmarks: dict  # name -> Benchmark (anchors excluded)

    def select(self, names=(), include_convergence: bool = False) -> list[Benchmark]:
        """Benchmarks named (in that order), or every one; `_conv` ones only when named or included."""
        if names:
            unknown = [n for n in names if n not in self.benchmarks]
            if unknown:
                known = ", ".join(sorted(self.benchmarks)) or "none"
                raise BenchSpecError(f"{self.path}: no benchmark named {unknown[0]!r}; the spec has: {known}")
            return [self.benchmarks[n] for n in dict.fromkeys(names)]
        return [b for b in self.benchmarks.values() if include_convergence or not b.convergence]


def load(path) -> Spec:
    path = Path(path)
    try:
        data, lines = yamlfile.load(path)
    except UserError as exc:
        raise BenchSpecError(str(exc).replace("inventory", "benchmark spec")) from None
    if not isinstance(data, dict):
        raise BenchSpecError(f"{path}:1: a benchmark spec is a mapping of benchmark name -> entry")
    benchmarks = {}
    for name, entry in data.items():
        name = str(name)
        if "options" in name:
            continue
        benchmarks[name] = _benchmark(path, name, entry, lines)
    return Spec(path, benchmarks)


def _fail(path: Path, lines: dict, loc, message: str):
    raise BenchSpecError(f"{path}:{yamlfile.line_of(lines, loc)}: {message}")


def _benchmark(path: Path, name: str, entry, lines: dict) -> Benchmark:
    if not isinstance(entry, dict):
        _fail(path, lines, (name,), f"benchmark {name!r} must be a mapping with at least `cmd`")
    for key in entry:
        if key not in ENTRY_KEYS and key not in IGNORED_KEYS:
            allowed = ", ".join(sorted(ENTRY_KEYS))
            _fail(path, lines, (name, key), f"{name}: unknown key {key!r} (allowed: {allowed})")
    cmd = entry.get("cmd")
    if not isinstance(cmd, str) or not cmd.strip():
        _fail(path, lines, (name, "cmd"), f"{name}: `cmd` must be a non-empty command line")
    folder = path.resolve().parent
    if entry.get("reference_directory"):
        folder = Path(str(entry["reference_directory"]))
    if entry.get("location"):
        folder = folder / str(entry["location"])
    bench = Benchmark(name=name, cmd=cmd, folder=folder, description=str(entry.get("description") or "").strip())
    bench.env = _env(path, lines, name, entry.get("env"))
    bench.parameters = entry.get("parameters")
    bench.data = _data(path, lines, name, entry.get("data"))
    bench.derived = _derived(path, lines, name, entry.get("derived"))
    bench.output = _output(path, lines, name, entry.get("output"))
    bench.timeout = _timeout(path, lines, name, entry.get("timeout"))
    rows = _expand(path, lines, name, bench.parameters)
    _check_placeholders(path, lines, bench, rows)
    return bench


def _env(path, lines, name, env) -> dict:
    if env is None:
        return {}
    if not isinstance(env, dict):
        _fail(path, lines, (name, "env"), f"{name}: `env` must map variable names to values")
    out = {}
    for key, value in env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) or isinstance(value, (dict, list)):
            _fail(path, lines, (name, "env", key), f"{name}: env {key!r} must be NAME: value")
        out[str(key)] = "" if value is None else str(value)
    return out


def _mapping(path, lines, name: str, key: str, value, shape: str) -> dict:
    """The `key` section of benchmark `name` as a dict ({} when absent); anything else is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(path, lines, (name, key), f"{name}: `{key}` must map metric names to {shape}")
    return value


def _data(path, lines, name, data) -> dict:
    out = {}
    for metric, spec in _mapping(path, lines, name, "data", data, "{regexp, skip, reduction_type}").items():
        loc = (name, "data", metric)
        if not isinstance(spec, dict) or "regexp" not in spec:
            _fail(path, lines, loc, f"{name}: data metric {metric!r} needs a `regexp`")
        extra = set(spec) - METRIC_KEYS
        if extra:
            _fail(path, lines, loc + (sorted(extra)[0],), f"{name}: data metric {metric!r}: unknown key {sorted(extra)[0]!r}")
        try:
            pattern = re.compile(str(spec["regexp"]))
        except re.error as exc:
            _fail(path, lines, loc + ("regexp",), f"{name}: regexp of {metric!r} does not compile ({exc})")
        if pattern.groups > 1:
            _fail(path, lines, loc + ("regexp",), f"{name}: regexp of {metric!r} has {pattern.groups} groups; use one")
        skip = spec.get("skip", 0)
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            _fail(path, lines, loc + ("skip",), f"{name}: skip of {metric!r} must be a whole number >= 0")
        reduction = spec.get("reduction_type", "mean")
        if reduction not in REDUCTIONS:
            _fail(path, lines, loc + ("reduction_type",),
                  f"{name}: reduction_type of {metric!r} must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")
        out[str(metric)] = Metric(pattern, skip, reduction)
    return out


def _derived(path, lines, name, derived) -> dict:
    out = {}
    for metric, spec in _mapping(path, lines, name, "derived", derived, "{expr}").items():
        loc = (name, "derived", metric)
        if not isinstance(spec, dict) or not isinstance(spec.get("expr"), str) or set(spec) - DERIVED_KEYS:
            _fail(path, lines, loc, f"{name}: derived metric {metric!r} must be {{expr: \"...\"}}")
        out[str(metric)] = {"expr": spec["expr"], "reduction_type": spec.get("reduction_type", "mean")}
    return out


def _output(path, lines, name, output) -> list:
    if output is None:
        return []
    if not isinstance(output, list):
        _fail(path, lines, (name, "output"), f"{name}: `output` must be a list of [label, metric]")
    pairs = []
    for i, row in enumerate(output):
        if not isinstance(row, list) or len(row) != 2:
            _fail(path, lines, (name, "output", i), f"{name}: output item {i + 1} must be [label, metric]")
        pairs.append((str(row[0]), str(row[1])))
    return pairs


def _timeout(path, lines, name, timeout):
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        _fail(path, lines, (name, "timeout"), f"{name}: timeout must be a number of seconds > 0")
    return float(timeout)


def _expand(path, lines, name, parameters) -> list[dict]:
    """examples-utils' expansion: list form zips rows with the first row's names; dict form takes
    every combination of the comma-separated values (later parameters vary slowest)."""
    if parameters is None:
        return [{}]
    if isinstance(parameters, list):
        if not parameters or not isinstance(parameters[0], list) or not all(isinstance(r, list) for r in parameters):
            _fail(path, lines, (name, "parameters"),
                  f"{name}: list-form parameters are rows: [[name, ...], [value, ...], ...]")
        names = [str(n) for n in parameters[0]]
        return [{k: str(v) for k, v in zip(names, row)} for row in parameters[1:]]
    if isinstance(parameters, dict):
        variants = [{}]
        for key, values in parameters.items():
            if isinstance(values, (dict, list)):
                _fail(path, lines, (name, "parameters", key), f"{name}: parameter {key!r} takes comma-separated values")
            variants = [{**v, str(key): value} for value in str(values).split(",") for v in variants]
        return variants
    _fail(path, lines, (name, "parameters"), f"{name}: `parameters` must be a list of rows or a mapping")


def _check_placeholders(path, lines, bench: Benchmark, rows: list[dict]) -> None:
    names = set().union(*rows) if rows else set()
    for text, loc in [(bench.cmd, "cmd")] + [(d["expr"], ("derived", m)) for m, d in bench.derived.items()]:
        loc = (bench.name,) + ((loc,) if isinstance(loc, str) else loc)
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            _fail(path, lines, loc, f"{bench.name}: bad braces in {loc[-1]} ({exc}); write {{{{ }}}} for a literal brace")
        allowed = names | (set(bench.data) | set(bench.derived) if loc[1] == "derived" else set())
        unknown = sorted(f for f in fields if f.split(".")[0].split("[")[0] not in allowed)
        if unknown:
            _fail(path, lines, loc, f"{bench.name}: placeholder {{{unknown[0]}}} is neither a parameter nor a metric")


def variants(bench: Benchmark) -> list[Variant]:
    """One Variant per parameter combination, named like examples-utils: name_param_value_..."""
    out = []
    for params in _expand(Path("?"), {}, bench.name, bench.parameters):
        vname = bench.name + "".join(f"_{k}_{params[k]}" for k in sorted(params))
        cmd = " ".join(bench.cmd.format(**params).split())
        out.append(Variant(vname, params, cmd))
    return out
