"""Results of a `mae-launch bench` run: one folder per run under bench/results/<timestamp>/.

    folder = new_run_dir(root)                 bench/results/20261128-181500[-2]/
    write(folder, spec_path, results)          results.json, results.csv, summary.md

results.json: {"spec", "machine", "variants": [VariantResult.to_dict(), ...]}.
results.csv: one row per variant: benchmark, variant, ok, exitcode, duration_s, then every metric.
summary.md: a table of each variant's `output` values and, for a failed variant, its log tail.
"""
from __future__ import annotations

import csv
import json
import os
import platform
from datetime import datetime
from pathlib import Path


def new_run_dir(root) -> Path:
    root = Path(root)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a results folder under {root}")


def machine() -> dict:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), platform.processor())
    except OSError:
        model = platform.processor()
    return {"host": platform.node(), "cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "bf16_native": any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))}


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write(folder: Path, spec_path, results: list) -> dict:
    folder = Path(folder)
    doc = {"spec": str(spec_path), "machine": machine(), "variants": [r.to_dict() for r in results]}
    (folder / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    metrics = list(dict.fromkeys(m for r in results for m in r.results))
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["benchmark", "variant", "ok", "exitcode", "duration_s"] + metrics)
        for r in results:
            flat = r.flat()
            writer.writerow([r.benchmark, r.variant, r.ok, r.exitcode, r.duration_s]
                            + ["" if flat.get(m) is None else flat[m] for m in metrics])
    (folder / "summary.md").write_text(summary(doc, results))
    return doc


def summary(doc: dict, results: list) -> str:
    m = doc["machine"]
    lines = [f"# Benchmarks from {doc['spec']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}.", "",
             "| variant | result | seconds | values |", "|---|---|---|---|"]
    for r in results:
        values = ", ".join(f"{k} {_fmt(v)}" for k, v in (r.output or r.flat()).items()) or "—"
        lines.append(f"| {r.variant} | {'ok' if r.ok else 'FAILED: ' + r.error} | {r.duration_s:.1f} | {values} |")
    for r in results:
        if not r.ok:
            lines += ["", f"## {r.variant}: {r.error}", "", f"`{r.command}`", "", "```", r.log_tail, "```"]
    return "\n".join(lines) + "\n"
