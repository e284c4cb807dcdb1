"""Files a job leaves behind: does a checkpoint exist, copy it to the hosts that lack it, read results.

Hosts may or may not share a filesystem. A consumed checkpoint is looked for on every host of the
next job; a host that lacks it gets a copy from the controller (where rank 0 wrote it), relayed
through this machine by the transport's rsync, with the same host-key policy as every other connection.
"""
from __future__ import annotations

import json
import pathlib
import tempfile

from launcher import remote, report
from launcher.errors import UserError
from launcher.paths import HostPath

COPY_TIMEOUT = 3600


def sizes(t: remote.Target, paths: list) -> list[int | None]:
    kv = remote.parse_kv(t.run_template("file_info.sh.j2", timeout=30, check=True, paths=paths,
                                        show=False).stdout)
    return [int(kv[f"p{i}"]) if kv.get(f"p{i}") else None for i in range(len(paths))]


def read_text(t: remote.Target, path) -> str | None:
    out = t.run_template("file_info.sh.j2", timeout=30, check=True, paths=[path], show=True).stdout
    head, _, body = out.partition("---\n")
    return body if remote.parse_kv(head).get("p0") else None


def ensure_checkpoint(plan, what: str) -> None:
    """Make sure `plan.consumed_checkpoint` is on every host of `plan` (copying from the controller)."""
    if plan.consumed_checkpoint is None:
        return
    distribute(plan.hosts[0].host, plan.consumed_checkpoint,
               {hp.host.name: (hp.host, plan.consumed_checkpoint) for hp in plan.hosts}, what)


def ensure_resume(plan) -> None:
    """Before a resume: each host's own output dir gets the controller's latest checkpoint
    (hosts that do not share a filesystem would otherwise restart from scratch, out of step)."""
    distribute(plan.hosts[0].host, plan.checkpoint,
               {hp.host.name: (hp.host, HostPath(f"{hp.output_dir}/checkpoint.pth")) for hp in plan.hosts},
               plan.job, required=False)


def _lookup(ts: dict, names, paths: dict, what: str) -> dict:
    """name -> size of paths[name] on that host (None: absent); UserError when a host fails."""
    results = remote.fan_out([ts[n] for n in names], lambda t: sizes(t, [paths[t.name]])[0], timeout=60)
    if not all(r.ok for r in results):
        raise UserError(report.failure_message(f"looking for the {what} checkpoint", results))
    return {r.host: r.value for r in results}


def _relay(ts: dict, source: str, source_path, dests: dict, missing: list, what: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mae-launch-ckpt-") as tmp:
        local = pathlib.Path(tmp) / "checkpoint.pth"
        try:
            ts[source].rsync_down(source_path, local, what=f"copying the {what} checkpoint",
                                  timeout=COPY_TIMEOUT)
        except remote.RemoteError as e:
            raise UserError(f"{e.host}: {e.message}") from None

        def push(t):
            dest = dests[t.name][1]
            t.run_template("mkdir.sh.j2", timeout=30, check=True, path=HostPath(str(dest).rsplit("/", 1)[0]))
            t.rsync_up(local, dest, what=f"copying the {what} checkpoint", timeout=COPY_TIMEOUT)
            return "copied"

        pushed = remote.fan_out([ts[n] for n in missing], push, timeout=COPY_TIMEOUT)
        if not all(r.ok for r in pushed):
            raise UserError(report.failure_message(f"copying the {what} checkpoint", pushed))


def distribute(source_host, source_path, dests: dict, what: str, required: bool = True) -> list[str]:
    """Copy `source_path` on `source_host` to dests {name: (host, path)} that lack it (or differ in
    size), relayed through this machine. Returns the names copied to."""
    ts = {name: remote.target(host) for name, (host, _) in dests.items()}
    ts.setdefault(source_host.name, remote.target(source_host))
    try:
        src = _lookup(ts, [source_host.name], {source_host.name: source_path}, what)[source_host.name]
        if src is None and not required:
            return []
        if src is None:
            raise UserError(f"no {what} checkpoint at {source_path} on {source_host.name}: run {what} first, "
                            "or name the checkpoint with --from RUN or --checkpoint PATH")
        found = _lookup(ts, list(dests), {n: p for n, (_, p) in dests.items()}, what)
        missing = [n for n, size in found.items() if size is None or (size != src and not (
            n == source_host.name and str(dests[n][1]) == str(source_path)))]
        if missing:
            _relay(ts, source_host.name, source_path, dests, missing, what)
        return missing
    finally:
        remote.close_all(ts.values())


def validation_result(plan) -> dict | None:
    t = remote.target(plan.hosts[0].host)
    try:
        text = read_text(t, HostPath(f"{plan.output_dir}/validation.json"))
    finally:
        t.close()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
