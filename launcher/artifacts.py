"""Files a job leaves behind: does a checkpoint exist, copy it to the hosts that lack it, read results.

Hosts may or may not share a filesystem. A consumed checkpoint is looked for on every host of the
next job; a host that lacks it gets a copy from the controller (where rank 0 wrote it), relayed
through this machine by rsync with the same host-key policy as every other connection.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import tempfile

from launcher import remote
from launcher.errors import UserError


def sizes(t: remote.Target, paths: list) -> list[int | None]:
    kv = remote.parse_kv(t.run_template("file_info.sh.j2", timeout=30, check=True, paths=paths,
                                        show=False).stdout)
    return [int(kv[f"p{i}"]) if kv.get(f"p{i}") else None for i in range(len(paths))]


def read_text(t: remote.Target, path) -> str | None:
    out = t.run_template("file_info.sh.j2", timeout=30, check=True, paths=[path], show=True).stdout
    head, _, body = out.partition("---\n")
    return body if remote.parse_kv(head).get("p0") else None


def _remote_path(host, path: str) -> str:
    return path[2:] if path.startswith("~/") else path


def _rsync(argv: list[str], host_name: str) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise remote.RemoteError(host_name, "failed", f"copying the checkpoint failed (rsync exit {p.returncode})",
                                 remote._tail(p.stderr))


def ensure_checkpoint(plan, what: str) -> None:
    """Make sure `plan.consumed_checkpoint` is on every host of `plan` (copying from the controller)."""
    if plan.consumed_checkpoint is None:
        return
    controller = plan.hosts[0].host
    distribute(controller, plan.consumed_checkpoint,
               {hp.host.name: (hp.host, plan.consumed_checkpoint) for hp in plan.hosts}, what)


def ensure_resume(plan) -> None:
    """Before a resume: each host's own output dir gets the controller's latest checkpoint
    (hosts that do not share a filesystem would otherwise restart from scratch, out of step)."""
    controller = plan.hosts[0].host
    distribute(controller, plan.checkpoint,
               {hp.host.name: (hp.host, type(plan.checkpoint)(f"{hp.output_dir}/checkpoint.pth"))
                for hp in plan.hosts}, plan.job, required=False)


def distribute(source_host, source_path, dests: dict, what: str, required: bool = True) -> list[str]:
    """Copy `source_path` on `source_host` to dests {name: (host, path)} that lack it (or differ in
    size), relayed through this machine. Returns the names copied to."""
    ts = {name: remote.target(host) for name, (host, _) in dests.items()}
    if source_host.name not in ts:
        ts[source_host.name] = remote.target(source_host)
    try:
        src = remote.fan_out([ts[source_host.name]], lambda t: sizes(t, [source_path])[0], timeout=60)[0]
        if not src.ok:
            raise UserError(remote.failure_message(f"looking for the {what} checkpoint", [src]))
        if src.value is None and not required:
            return []
        if src.value is None:
            raise UserError(f"no {what} checkpoint at {source_path} on {source_host.name}: run {what} first, "
                            "or name the checkpoint with --from RUN or --checkpoint PATH")
        results = remote.fan_out([ts[n] for n in dests], lambda t: sizes(t, [dests[t.name][1]])[0], timeout=60)
        bad = [r for r in results if not r.ok]
        if bad:
            raise UserError(remote.failure_message(f"looking for the {what} checkpoint", results))
        missing = [r.host for r in results
                   if r.value is None or (r.value != src.value and not (
                       r.host == source_host.name and str(dests[r.host][1]) == str(source_path)))]
        if not missing:
            return []
        with tempfile.TemporaryDirectory(prefix="mae-launch-ckpt-") as tmp:
            local = pathlib.Path(tmp) / "checkpoint.pth"
            opts, spec = remote.rsync_remote(source_host, _remote_path(source_host, str(source_path)))
            _rsync(["rsync", "-a", "--secluded-args", *opts, spec, str(local)], source_host.name)

            def push(t):
                dest = dests[t.name][1]
                t.run_template("mkdir.sh.j2", timeout=30, check=True,
                               path=type(dest)(str(dest).rsplit("/", 1)[0]))
                opts, spec = remote.rsync_remote(t.host, _remote_path(t.host, str(dest)))
                _rsync(["rsync", "-a", "--secluded-args", *opts, str(local), spec], t.name)
                return "copied"

            pushed = remote.fan_out([ts[n] for n in missing], push, timeout=3600)
            if not all(r.ok for r in pushed):
                raise UserError(remote.failure_message(f"copying the {what} checkpoint", pushed))
        return missing
    finally:
        remote.close_all(ts.values())


def validation_result(plan) -> dict | None:
    t = remote.target(plan.hosts[0].host)
    try:
        text = read_text(t, type(plan.output_dir)(f"{plan.output_dir}/validation.json"))
    finally:
        t.close()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
