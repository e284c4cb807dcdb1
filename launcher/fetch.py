"""Bring a run's files back from its hosts with rsync: outputs, logs, TensorBoard event files.

Layout here (under `runs/<id>/`, or the folder given with --to)::

    <job>/output/            the rank-0 host's output folder of the job (checkpoints, metrics, events)
    <job>/output.<host>/     another host's output folder (with --all-hosts)
    hosts/<host>/            every host's run directory: job scripts, host and rank logs, exit files

Transfers are resumable: rsync keeps a partly copied file (--partial) and sends only what is
missing the next time; a file already complete is skipped. Every transfer has an I/O timeout.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import subprocess
import tempfile
from typing import Callable

from launcher import remote
from launcher.paths import HostPath

RSYNC_TIMEOUT = 60  # seconds without any data before rsync gives up
#: never copied back: the job's secrets file (deleted before the job runs, excluded anyway)
NEVER = ["*.secrets", "*.secrets.*"]
EVENTS = "events.out.tfevents.*"


@dataclasses.dataclass(frozen=True)
class Transfer:
    host: object                 # launcher.inventory.Host
    source: str                  # folder on the host (absolute or ~/...)
    dest: pathlib.Path           # folder here
    what: str                    # "output" | "logs" | "events"
    filters: tuple = ()
    optional: bool = False       # a folder that may not exist (another host's output): absent = nothing to copy


def output_dirs(job, all_hosts: bool) -> dict[str, str]:
    """{host name: output folder} of a recorded job (JobRecord): the rank-0 host's, or every host's."""
    names = list(job.hosts)
    chosen = names if all_hosts else names[:1]
    return {n: str(job.hosts[n].output_dir or job.output_dir) for n in chosen}


def plan(run, jobs: list, dest: pathlib.Path, *, all_hosts: bool = False, checkpoints: bool = True,
         logs: bool = True, events_only: bool = False) -> list[Transfer]:
    """The transfers that bring `jobs` (JobRecords) of `run` (a RunRecord) back into `dest`."""
    out_filters = (f"--include={EVENTS}", "--exclude=*") if events_only else \
        (() if checkpoints else ("--exclude=*.pth",))
    transfers = []
    for job in jobs:
        first = next(iter(job.hosts))
        for name, folder in output_dirs(job, all_hosts).items():
            sub = "output" if name == first else f"output.{name}"
            what = "events" if events_only else "output"
            transfers.append(Transfer(run.host(name), folder, dest / job.job / sub, what, out_filters,
                                      optional=name != first))
    if logs and not events_only:
        seen = set()
        for job in jobs:
            for name, h in job.hosts.items():
                if (name, str(h.run_dir)) not in seen:
                    seen.add((name, str(h.run_dir)))
                    transfers.append(Transfer(run.host(name), str(h.run_dir), dest / "hosts" / name, "logs"))
    return transfers


def rsync_argv(t: Transfer, bwlimit: int | None = None) -> list[str]:
    target = remote.target(t.host)  # builds the rsync spelling only: no connection is opened
    excludes = [f"--exclude={p}" for p in NEVER]
    limit = [f"--bwlimit={bwlimit}"] if bwlimit else []
    return [*remote.RSYNC_BASE, "--partial", f"--timeout={RSYNC_TIMEOUT}", "--info=progress2",
            "--no-inc-recursive", *limit, *excludes, *t.filters, *target.rsync_args(),
            target.remote_path(HostPath(t.source.rstrip("/") + "/")), f"{t.dest}/"]


_PROGRESS = re.compile(rb"([\d,]+)\s+(\d+)%")


def pull(t: Transfer, progress: Callable[[str, int, int], None] | None = None, bwlimit: int | None = None) -> str:
    """Run one transfer; `progress(host, bytes, percent)` as rsync reports it. Returns a summary."""
    t.dest.mkdir(parents=True, exist_ok=True)
    done = percent = 0
    with tempfile.TemporaryFile() as errfile:  # a file, not a pipe: a chatty stderr cannot block rsync
        proc = subprocess.Popen(rsync_argv(t, bwlimit), stdout=subprocess.PIPE, stderr=errfile,
                                stdin=subprocess.DEVNULL)
        while chunk := proc.stdout.read1(4096):
            for m in _PROGRESS.finditer(chunk):
                done, percent = int(m.group(1).replace(b",", b"")), int(m.group(2))
                if progress:
                    progress(t.host.name, done, percent)
        rc = proc.wait()
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
    if rc == 23 and "No such file or directory" in err and "change_dir" in err:
        if t.optional:
            if not any(t.dest.iterdir()):
                t.dest.rmdir()
            return f"{t.what}: nothing there"
        raise remote.RemoteError(t.host.name, "missing", f"{t.source} does not exist on {t.host.name}")
    if rc != 0:
        kind = "unreachable" if rc == 255 else "timeout" if rc in (30, 35) else "failed"
        raise remote.RemoteError(t.host.name, kind, f"rsync of {t.source} failed (exit {rc})", remote.tail(err))
    return f"{t.what}: {done} bytes"
