"""The Markdown and PNG plots of `make bench` (bench/report.py): every figure a same-run ratio."""
from __future__ import annotations

from pathlib import Path


def _plot(path: Path, title: str, labels: list, series: dict, ylabel: str, line: float | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    if line is not None:
        ax.axhline(line, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _failed(name: str, res: dict) -> list:
    return [f"**Not measured** ({name}: exit {res.get('code')}). Last lines:", "", "```", res.get("tail", ""), "```", ""]


def data_section(res: dict, folder: Path) -> list:
    out = ["## Data pipeline (bench/bench_data.py)", ""]
    if not res["ok"]:
        return out + _failed("bench_data", res)
    d = res["data"]
    rates, ratio = d["img_per_s_per_core"], d["ratio"]
    out += [f"{d['images']} ImageNet-sized JPEGs (scikit-image photos, longer side 500 px) → 224×224, one core, "
            f"median of {d['rounds']} rounds in which the pipelines take turns batch by batch. "
            f"{d.get('decoding', '')}.", "",
            "| pipeline | img/s per core | ratio to the reference | ratio in CPU time |", "|---|---|---|---|"]
    cpu = {k: f"{v:.2f}×" for k, v in d.get("cpu_ratio", {}).items()}
    out += [f"| {k} | {v:.1f} | **{ratio[k]:.2f}×** | {cpu.get(k, '')} |" for k, v in rates.items()]
    out += [""] + [f"- {k}: {what}" for k, what in d.get("pipelines", {}).items()]
    png = _plot(folder / "data.png", "Pretraining input pipeline, img/s per core", list(rates),
                {"img/s": list(rates.values())}, "img/s")
    return out + ["", f"![data pipeline]({png})", ""]


def deploy_section(res: dict, folder: Path) -> list:
    out = ["## Deploy (bench/bench_deploy.py)", ""]
    if not res["ok"]:
        return out + _failed("bench_deploy", res)
    d = res["data"]
    out += ["Loopback sshd hosts. Fresh: workdirs emptied of everything but an earlier deploy's remap build "
            "(library, objects and its recorded build key); no change: "
            "deployed workdirs. mae-launch uses the connections the previous deploy kept (control_persist), "
            "or new ones in the rows marked \"new connections\" (control_persist: 0). "
            "Baseline: `xargs -P N` of OpenSSH rsync + `make -C remap` per host "
            "(bench/lean_deploy.sh), strict host-key checking on both; best of the repeats. "
            "Ratio < 1: mae-launch is faster.",
            ""]
    labels, ratios = [], []
    out += _ratio_table(d["deploy"], labels, ratios)
    if d.get("plain_login"):
        out += ["", "The same on hosts whose login shell reads no `~/.bashrc` (every SSH command of both tools "
                "runs the login user's shell; on this machine root's `~/.bashrc` runs `pyenv init`, about 0.15 s "
                "of CPU per command):", ""]
        out += _ratio_table(d["plain_login"], labels, ratios, ", plain login shell")
    cold = d.get("cold")
    if cold:
        c1, c3 = cold.get("1", cold.get(1)), cold.get("3", cold.get(3))
        out += ["", f"Cold deploy (remap compiled from scratch): 1 host {c1:.1f} s, 3 hosts {c3:.1f} s: "
                f"**{c3 / c1:.2f}×** the 1-host time (hosts with the same build key share one build)."]
        labels.append("cold\n3 hosts / 1")
        ratios.append(c3 / c1)
    png = _plot(folder / "deploy.png", "deploy: mae-launch / xargs OpenSSH loop; cold 3 hosts / 1 host", labels,
                {"ratio": ratios}, "ratio", line=1.0)
    return out + ["", f"![deploy]({png})", ""]


def _ratio_table(figures: dict, labels: list, ratios: list, suffix: str = "") -> list:
    """Rows of mae-launch against the lean loop (host count -> case -> seconds); each ratio is also
    appended to `labels`/`ratios` for the plot."""
    out = ["| hosts | case | mae-launch s | baseline s | ratio |", "|---|---|---|---|---|"]
    for n, fig in figures.items():
        for case, v in fig.items():
            m, b = v["mae-launch"], v["lean"]
            out.append(f"| {n} | {case}{suffix} | {m:.2f} | {b:.2f} | **{m / b:.2f}×** |")
            labels.append(f"{n} hosts{suffix}\n{case}")
            ratios.append(m / b)
    return out


def remap_section(res: dict, folder: Path) -> list:
    out = ["## Native remap op (bench/bench_remap.py)", ""]
    if not res["ok"]:
        return out + _failed("bench_remap", res)
    rows = res["data"]["rows"]
    out += [f"Forward + backward at ViT-B shapes, {res['data']['dtype']}, {res['data']['threads']} thread(s), "
            "median; ratio = plain PyTorch time / native time.", "",
            "| device | case | plain ms | native ms | ratio |", "|---|---|---|---|---|"]
    out += [f"| {r['device']} | {r['case']} | {r['plain_ms']:.3f} | {r['native_ms']:.3f} | "
            f"**{r['plain_ms'] / r['native_ms']:.2f}×** |" for r in rows]
    png = _plot(folder / "remap.png", "remap: speed-up of the native op over plain PyTorch",
                [r["case"].split(" [")[0] for r in rows], {"speed-up": [r["plain_ms"] / r["native_ms"] for r in rows]},
                "×", line=1.0)
    return out + ["", f"![remap]({png})", ""]


def pretrain_section(res: dict, folder: Path) -> list:
    out = ["## Training step MFU (bench/bench_pretrain.py)", ""]
    if not res["ok"]:
        return out + _failed("bench_pretrain", res)
    d = res["data"]
    out += [f"{d['model']}, batch {d['batch']}, {d['where']}; {d['gflop_per_image']:.1f} GFLOP per training image. "
            "MFU = model FLOP/s / the same run's matmul peak of that precision.", "",
            "| precision | images/s | model GFLOP/s | matmul peak GFLOP/s | MFU |", "|---|---|---|---|---|"]
    labels, mfus = [], []
    for r in d["rows"]:
        if r["images_per_s"] is None:
            out.append(f"| {r['precision']} | — | — | {r['matmul_peak_flops'] / 1e9:.1f} | "
                       f"not measurable here: {r['skipped']} |")
            continue
        out.append(f"| {r['precision']} | {r['images_per_s']:.2f} | {r['model_flops'] / 1e9:.1f} | "
                   f"{r['matmul_peak_flops'] / 1e9:.1f} | **{r['mfu']:.2f}** |")
        labels.append(r["precision"])
        mfus.append(r["mfu"])
    if mfus:
        png = _plot(folder / "mfu.png", "Training step: model FLOP/s / same-run matmul peak", labels,
                    {"MFU": mfus}, "MFU", line=1.0)
        out += ["", f"![mfu]({png})"]
    return out + [""]


def render(info: dict, results: dict, folder: Path, stamp: str) -> str:
    flags = ", ".join(info.get("flags") or []) or "none of avx2/avx512/amx"
    out = [f"# mae-launch benchmark report {stamp}", "",
           f"Machine: {info['cpu']}, {info['cores']} cores ({info['system']}), Python {info['python']}, "
           f"torch {info.get('torch')}, GPU: {info.get('cuda') or 'none'}. Vector flags: {flags}. "
           f"Native bf16: {'yes' if info['bf16_native'] else 'no'}. Load average {info['load_start']:.1f} at the "
           f"start, {info['load_end']:.1f} at the end (other work on the machine slows every figure; the ratios "
           "compare pipelines measured side by side).", ""]
    for name, section in (("data", data_section), ("deploy", deploy_section), ("remap", remap_section),
                          ("pretrain", pretrain_section)):
        if name in results:  # `--only` runs a subset
            out += section(results[name], folder)
    out += ["## Times", "", "| script | seconds |", "|---|---|"]
    out += [f"| {k} | {v.get('seconds', 0):.0f} |" for k, v in results.items()]
    return "\n".join(out) + "\n"
