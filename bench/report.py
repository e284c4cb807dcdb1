"""`make bench`: run every benchmark under bench/ and write ONE report with plots.

    .venv/bin/python bench/report.py [--out bench/results] [--hosts 8,32] [--quick]

Writes bench/results/<timestamp>/report.md, PNG plots beside it, each script's JSON and log. Every
figure is a ratio against its baseline measured in the same run:
  - data pipeline: mae's fast path / the reference pipeline, img/s on one core (bench_data.py);
  - deploy: mae-launch deploy / an `xargs -P N` OpenSSH rsync + make loop, fresh and unchanged hosts,
    and a cold deploy to 3 hosts / to 1 (bench_deploy.py; needs root for the loopback sshd hosts);
  - remap: the plain PyTorch path / the native op, forward + backward (bench_remap.py);
  - training step: model FLOP/s / the same run's matmul peak (MFU), per precision (bench_pretrain.py).
A script that fails is reported with its log tail; the others still run, the report is still written,
and the exit status is then 1 (`make bench` fails). `--only data,remap` runs a subset.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("data", "remap", "pretrain", "deploy")
sys.path.insert(0, str(ROOT / "bench"))

import report_md  # noqa: E402


def machine() -> dict:
    info = {"host": platform.node(), "system": f"{platform.system()} {platform.release()}",
            "cores": os.cpu_count(), "python": platform.python_version(), "cpu": platform.processor(), "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name"))
        flags = next(ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags"))
        info["flags"] = [f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma"))]
    except (OSError, StopIteration):
        pass
    info["bf16_native"] = any(f in info["flags"] for f in ("avx512_bf16", "amx_bf16"))
    try:
        import torch
        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - the report still says what it can
        info["torch"] = None
    return info


def run_script(folder: Path, name: str, args: list, timeout: float) -> dict:
    """Run bench/<name>.py with --json; {"ok", "seconds", "data" or "tail", "code"}."""
    out_json, log = folder / f"{name}.json", folder / f"{name}.log"
    argv = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args, "--json", str(out_json)]
    print(f"== {name}: {' '.join(argv[1:])}", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            code = subprocess.run(argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - t0
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    print(tail, flush=True)
    if code == 0 and out_json.is_file():
        return {"ok": True, "seconds": seconds, "data": json.loads(out_json.read_text())}
    return {"ok": False, "seconds": seconds, "tail": tail, "code": code}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--hosts", default="8,32", help="host counts of the deploy figures")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and hosts (a smoke run of the report)")
    ap.add_argument("--only", default=",".join(SCRIPTS), help="the benchmarks to run, comma-separated "
                    f"(default: all of {','.join(SCRIPTS)})")
    args = ap.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SCRIPTS))
    if unknown or not only:
        ap.error(f"--only {args.only}: name some of {', '.join(SCRIPTS)}")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(args.out) / stamp
    folder.mkdir(parents=True, exist_ok=False)
    info = machine()
    info["load_start"] = os.getloadavg()[0]
    quick = args.quick
    script_args = {
        "data": (["--rounds", "3" if quick else "9"], 1200),
        "remap": (["--reps", "5" if quick else "30", "--device", "cpu"], 900),
        "pretrain": (["--batch", "4" if quick else "8"], 1500),
        "deploy": ((["--hosts", "2", "--repeat", "1", "--no-cold", "--plain-login-hosts", "2"] if quick
                    else ["--hosts", args.hosts, "--repeat", "1"]), 2400),
    }
    results = {}
    for name in only:
        if name == "deploy" and os.geteuid() != 0:
            results[name] = {"ok": False, "tail": "not run: the loopback sshd hosts need root", "code": None,
                             "skipped": True}
            continue
        script, timeout = script_args[name]
        results[name] = run_script(folder, f"bench_{name}", script, timeout)
    info["load_end"] = os.getloadavg()[0]
    text = report_md.render(info, results, folder, stamp)
    (folder / "report.md").write_text(text)
    (folder / "report.json").write_text(json.dumps({"machine": info, "results": results}, indent=1, default=str))
    print(f"\nreport: {folder / 'report.md'}")
    failed = [f"bench_{name}" for name, res in results.items() if not res["ok"] and not res.get("skipped")]
    if failed:
        print(f"error: {', '.join(failed)} failed (see the report and {folder}/<name>.log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
