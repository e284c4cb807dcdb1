"""Run benchmark variants and read their metrics, with examples-utils' semantics.

    extract(metrics, stdout, stderr, exitcode, replicas=1) -> ({name: {reduction: value}}, failed)
    reduce(values, metric_name, reduction_type, skip)        -> float
    derive(derived, results, params, exitcode)             -> failed (results updated in place)
    run_variant(bench, variant, log_dir, timeout=None)     -> VariantResult

Extraction: every line of stdout, then of stderr; every match of the metric's regexp (its one group,
or the whole match) is a value. A NaN value, a non-zero exit status or no more values than `skip`
leaves the metric empty (None) and fails the variant. `mean` sorts the values (descending for a
metric named ``latency``), drops the first `skip` and averages the rest; `final` takes the last
value, `min` the smallest, `value` the first. A metric named ``throughput`` is multiplied by the
process count of an ``mpirun --np N`` in the command line.

A variant's command is run as examples-utils runs it: placeholders filled, whitespace collapsed,
$VARIABLES expanded against the environment with the entry's `env` on top, split like a shell line
and started without a shell, in the spec's folder. The directory of the running Python is put first
on PATH, so `python3` is the interpreter mae-launch runs in (its virtualenv).
"""
from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from launcher.benchspec import Benchmark, Metric, Variant

TAIL_LINES = 40
SAFE_NAMES = {"abs": abs, "min": min, "max": max, "round": round, "float": float, "int": int, "sum": sum,
              "len": len, "math": math}


@dataclass
class VariantResult:
    benchmark: str
    variant: str
    params: dict
    command: str
    exitcode: int
    ok: bool
    results: dict                      # metric -> {reduction_type: value or None}
    output: dict                       # label -> value (the entry's `output` pairs)
    start_time: str
    duration_s: float
    log_paths: dict
    log_tail: str = ""
    error: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def flat(self) -> dict:
        return {name: next(iter(v.values())) for name, v in self.results.items()}


def reduce(values: list[float], name: str, reduction_type: str, skip: int = 0) -> float:
    """One value from the matches, as examples-utils reduces them (values already checked)."""
    if reduction_type == "mean":
        ordered = sorted(values, reverse=(name == "latency"))[skip:]
        return sum(ordered) / len(ordered)
    if reduction_type == "final":
        return values[-1]
    if reduction_type == "min":
        return min(values)
    if reduction_type == "value":
        return values[0]
    raise ValueError(f"unknown reduction_type {reduction_type!r}")


def mpirun_processes(command: str) -> float:
    match = re.search(r"mpirun.+--np.(\d*) ", command)
    return float(match.group(1)) if match and match.group(1) else 1


def extract(metrics: dict[str, Metric], stdout: str, stderr: str, exitcode: int, replicas: float = 1):
    results, failed = {}, False
    for name, metric in metrics.items():
        values = [float(m) for text in (stdout, stderr) for line in text.split("\n")
                  for m in metric.regexp.findall(line)]
        value = None
        if values and not any(math.isnan(v) for v in values) and not exitcode and len(values) > metric.skip:
            value = reduce(values, name, metric.reduction_type, metric.skip)
            if name == "throughput":
                value *= replicas
        results[name] = {metric.reduction_type: value}
        failed = failed or value is None
    return results, failed


def derive(derived: dict, results: dict, params: dict, exitcode: int) -> bool:
    failed = False
    for name, spec in derived.items():
        value = None
        if not exitcode:
            flat = {m: next(iter(v.values())) for m, v in results.items()}
            try:
                expression = spec["expr"].format(**{**flat, **params})
                value = eval(expression, {"__builtins__": {}}, dict(SAFE_NAMES))  # noqa: S307 - the spec's own formula
            except Exception:  # noqa: BLE001 - a missing metric or a bad formula leaves it empty
                value = None
        results[name] = {spec["reduction_type"]: value}
        failed = failed or value is None
    return failed


def variant_env(bench: Benchmark) -> dict:
    env = dict(os.environ)
    env.update(bench.env)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir] + [p for p in env.get("PATH", "").split(os.pathsep) if p != bindir])
    return env


def expand(command: str, env: dict) -> list[str]:
    """$NAME and ${NAME} from `env` (unknown ones left as written), then split like a shell line."""
    def sub(match):
        key = match.group(1) or match.group(2)
        return env.get(key, match.group(0))
    return shlex.split(re.sub(r"\$(?:(\w+)|\{([^}]*)\})", sub, command))


def _tail(stdout: str, stderr: str, lines: int = TAIL_LINES) -> str:
    text = (stdout.rstrip("\n") + "\n" + stderr.rstrip("\n")).strip("\n")
    return "\n".join(text.splitlines()[-lines:])


def execute(argv: list[str], env: dict, cwd: Path, log_dir: Path, timeout: float | None):
    """Run argv; stdout and stderr go to files in log_dir. Returns (stdout, stderr, exitcode, error)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout", log_dir / "stderr"
    error = ""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as exc:
            return "", "", 127, f"cannot start {argv[0]!r}: {exc.strerror or exc}"
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the group this Popen created: the variant and its children
            code = proc.wait()
            error = f"timed out after {timeout:g} s"
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    return stdout, stderr, code, error


def run_variant(bench: Benchmark, variant: Variant, log_dir: Path, timeout: float | None = None) -> VariantResult:
    """Run one variant on this machine."""
    env = variant_env(bench)
    limit = min(t for t in (timeout, bench.timeout) if t) if (timeout or bench.timeout) else None
    start = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    argv = expand(variant.cmd, env)
    stdout, stderr, code, error = execute(argv, env, bench.folder, log_dir, limit)
    return result_of(bench, variant, argv, stdout, stderr, code, start, time.perf_counter() - t0, log_dir, error)


def result_of(bench: Benchmark, variant: Variant, argv: list, stdout: str, stderr: str, code: int, start,
              duration: float, log_dir: Path, error: str = "") -> VariantResult:
    """Metrics, derived metrics and the verdict of a finished variant."""
    results, extract_failed = extract(bench.data, stdout, stderr, code, mpirun_processes(variant.cmd))
    derive_failed = derive(bench.derived, results, variant.params, code)
    ok = code == 0 and not extract_failed and not derive_failed
    if not error and code:
        error = f"exit status {code}"
    elif not error and not ok:
        empty = [m for m, v in results.items() if next(iter(v.values())) is None]
        error = f"no value for {', '.join(empty)}"
    flat = {m: next(iter(v.values())) for m, v in results.items()}
    output = {label: flat.get(metric) for label, metric in bench.output}
    return VariantResult(
        benchmark=bench.name, variant=variant.name, params=variant.params, command=shlex.join(argv),
        exitcode=code if code else (0 if ok else 1), ok=ok, results=results, output=output,
        start_time=start.isoformat(timespec="seconds"), duration_s=round(duration, 3),
        log_paths={"out": str(log_dir / "stdout"), "err": str(log_dir / "stderr")},
        log_tail="" if ok else _tail(stdout, stderr), error=error,
    )


def check_datasets(benchmarks: list[Benchmark], environ=None) -> None:
    """examples-utils' rule: a benchmark without gen/synth in its name reads $DATASETS_DIR."""
    environ = os.environ if environ is None else environ
    needy = [b.name for b in benchmarks if b.needs_dataset and b.name and "DATASETS_DIR" not in environ]
    if needy:
        from launcher.benchspec import BenchSpecError

        raise BenchSpecError(
            f"benchmark {needy[0]} reads a dataset (no 'gen' or 'synth' in its name): set DATASETS_DIR to the "
            "folder holding it (e.g. export DATASETS_DIR=/data), or pick a gen/synth benchmark with --benchmark"
        )


def run_all(benchmarks: list[Benchmark], folder: Path, timeout: float | None = None, on_start=None, on_done=None,
            runner=None):
    """Every variant of every benchmark, in order; a failed variant never stops the others.
    `runner(bench, variant, log_dir)` runs one variant (default: on this machine)."""
    from launcher.benchspec import variants

    results = []
    for bench in benchmarks:
        for variant in variants(bench):
            if on_start:
                on_start(variant)
            log_dir = folder / "logs" / variant.name
            result = runner(bench, variant, log_dir) if runner else run_variant(bench, variant, log_dir, timeout)
            results.append(result)
            if on_done:
                on_done(result)
    return results
