"""`mae-launch bench`: run benchmarks from an examples-utils spec (benchmarks.yml), record results."""
import sys
from pathlib import Path

import click
from rich.console import Console

from launcher import benchjob, benchresults, benchrun, benchspec, options


def _values(result) -> str:
    pairs = (result.output or result.flat()).items()
    return ", ".join(f"{k} {benchresults._fmt(v)}" for k, v in pairs)


@click.command()
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False),
              help="Benchmark spec in examples-utils' schema (e.g. benchmarks.yml).")
@click.option("--benchmark", "names", multiple=True, metavar="NAME",
              help="Run only this benchmark (repeatable); default: every one except *_conv.")
@click.option("--include-convergence", is_flag=True, help="Also run the *_conv (convergence) benchmarks.")
@click.option("--results-dir", default="bench/results", show_default=True, type=click.Path(file_okay=False),
              help="Each run writes <results-dir>/<timestamp>/.")
@click.option("--timeout", type=click.FloatRange(min=1), default=None, help="Seconds allowed per variant (local runs).")
@click.option("-i", "--inventory", "inventory_path", default=None, metavar="FILE",
              help="Run each variant as a job on this inventory's hosts (its cmd must run python3 -m mae.<job>).")
def bench(spec_path, names, include_convergence, results_dir, timeout, inventory_path):
    """Run benchmarks the way Graphcore's examples-utils does: every variant of each entry's `cmd`,
    metrics read with the entry's regexps and reductions. Writes results.json, results.csv,
    summary.md and every variant's stdout/stderr under the results folder. With --inventory each
    variant runs as a job on the inventory's hosts, like `mae-launch <job>`. Exit status 1 when a
    variant fails (the others still run).

    Example: mae-launch bench --spec benchmarks.yml --benchmark pytorch_mae_train_gen_digits
    """
    console = Console(highlight=False, soft_wrap=True)
    spec = benchspec.load(spec_path)
    selected = spec.select(names, include_convergence)
    if not selected:
        raise benchspec.BenchSpecError(f"{spec_path}: no benchmark to run (only anchors or *_conv entries)")
    benchrun.check_datasets(selected)
    runner = None
    if inventory_path is not None:
        inv = options.load(inventory_path)
        runner = lambda b, v, log_dir: benchjob.run_variant(console, inv, b, v, log_dir)  # noqa: E731
    folder = benchresults.new_run_dir(results_dir)
    console.print(f"results in {folder}")

    def started(variant):
        console.print(f"[bold]{variant.name}[/]: {variant.cmd}")

    def done(result):
        if result.ok:
            console.print(f"  [green]ok[/] {result.duration_s:.1f} s: {_values(result)}")
        else:
            console.print(f"  [red]FAILED[/] ({result.error}) after {result.duration_s:.1f} s; last lines:")
            console.print(result.log_tail, markup=False)

    results = benchrun.run_all(selected, folder, timeout, started, done, runner)
    benchresults.write(folder, Path(spec_path), results)
    failed = [r for r in results if not r.ok]
    console.print(f"{len(results) - len(failed)} of {len(results)} variant(s) ok; summary: {folder / 'summary.md'}")
    sys.exit(1 if failed else 0)
