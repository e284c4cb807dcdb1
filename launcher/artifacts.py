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
    path = plan.consumed_checkpoint
    if path is None:
        return
    controller = plan.hosts[0].host
    ts = {hp.host.name: remote.target(hp.host) for hp in plan.hosts}
    try:
        results = remote.fan_out(list(ts.values()), lambda t: sizes(t, [path])[0], timeout=60)
        bad = [r for r in results if not r.ok]
        if bad:
            raise UserError(remote.failure_message(f"looking for the {what} checkpoint", results))
        have = {r.host: r.value for r in results}
        if have[controller.name] is None:
            raise UserError(f"{what} produced no checkpoint at {path} on {controller.name}; "
                            "look at its logs with mae-launch logs")
        missing = [n for n, size in have.items() if size is None]
        if not missing:
            return
        with tempfile.TemporaryDirectory(prefix="mae-launch-ckpt-") as tmp:
            local = pathlib.Path(tmp) / "checkpoint.pth"
            opts, src = remote.rsync_remote(controller, _remote_path(controller, str(path)))
            _rsync(["rsync", "-a", "--secluded-args", *opts, src, str(local)], controller.name)

            def push(t):
                t.run_template("mkdir.sh.j2", timeout=30, check=True,
                               path=type(path)(str(path).rsplit("/", 1)[0]))
                opts, dest = remote.rsync_remote(t.host, _remote_path(t.host, str(path)))
                _rsync(["rsync", "-a", "--secluded-args", *opts, str(local), dest], t.name)
                return "copied"

            pushed = remote.fan_out([ts[n] for n in missing], push, timeout=3600)
            if not all(r.ok for r in pushed):
                raise UserError(remote.failure_message(f"copying the {what} checkpoint", pushed))
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
