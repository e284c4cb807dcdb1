"""Remove finished runs: their record here, their run directories on the hosts and, when asked,
their outputs. Never a live run: each host is asked whether any process of the run is alive there
(by the run's own id in the process environment), and a run with a live process, or a host that
does not answer, is left whole. Only paths mae-launch made are deleted: `<workdir>/runs/<id>` and
`<output>/<id>/<job>` (checked again on the host), then `<output>/<id>` when empty.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
import shutil

from launcher import remote
from launcher.errors import UserError
from launcher.paths import HostPath

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> datetime.timedelta:
    """`7d`, `12h`, `30m`, `2w`, `1d12h` -> timedelta; UserError otherwise."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise UserError(f"--older-than {text!r}: write an age such as 7d, 12h, 30m or 2w")
    return datetime.timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


def older_than(store, age: datetime.timedelta, now: datetime.datetime | None = None) -> list[str]:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    out = []
    for run_id in store.list_ids():
        created = datetime.datetime.strptime(store.load(run_id).created, "%Y-%m-%dT%H:%M:%SZ")
        if now - created.replace(tzinfo=datetime.timezone.utc) > age:
            out.append(run_id)
    return out


@dataclasses.dataclass
class HostPaths:
    host: str
    paths: list            # HostPath: run dir, then (with outputs) each job's output folder
    parents: list          # emptied parents to remove: <output>/<id>


def host_paths(run, outputs: bool) -> dict[str, HostPaths]:
    """What cleaning `run` removes on each of its hosts."""
    out = {}
    for name in run.host_names():
        paths, parents = [], []
        for job in run.jobs:
            h = job.hosts.get(name)
            if h is None:
                continue
            if h.run_dir not in paths:
                paths.append(HostPath(h.run_dir))
            folder = h.output_dir or (job.output_dir if name == next(iter(job.hosts)) else None)
            if outputs and folder and folder not in paths:
                paths.append(HostPath(folder))
                parent = HostPath(str(folder).rsplit("/", 1)[0])
                if parent.endswith(f"/{run.id}") and parent not in parents:
                    parents.append(parent)
        out[name] = HostPaths(name, paths, parents)
    return out


def look(run, plan: dict[str, HostPaths], remove: bool, limit: int = remote.DEFAULT_LIMIT) -> list:
    """Run clean.sh.j2 on every host of `plan`; value per host: {"live": n, "sizes": {path: KiB|None}}."""
    ts = {n: remote.target(run.host(n)) for n in plan}

    def one(t):
        hp = plan[t.name]
        done = t.run_template("clean.sh.j2", timeout=600, check=True, run_id=run.id, host=t.name,
                              paths=hp.paths, parents=hp.parents, remove=remove)
        kv = remote.parse_kv(done.stdout)
        sizes = {p: (int(kv[f"p{i}"]) if kv.get(f"p{i}") else None) for i, p in enumerate(hp.paths)}
        return {"live": int(kv.get("live", "0")), "sizes": sizes}

    try:
        return remote.fan_out(list(ts.values()), one, limit=limit, timeout=660)
    finally:
        remote.close_all(ts.values())


def remove_record(store, run_id: str) -> None:
    folder = store.dir(run_id)
    if (folder / "run.json").is_file():  # proof that the folder is a run record mae-launch wrote
        shutil.rmtree(folder)
