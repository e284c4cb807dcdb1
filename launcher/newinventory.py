"""`mae-launch inventory new`: write an inventory from what is already written down elsewhere.

Sources: the `Host` entries of an OpenSSH config (launcher/sshhosts.py), a DeepSpeed/MPI hostfile
(launcher/hostfile.py), or the submit host's Slurm (launcher/slurminfo.py). The text comes from
templates/inventory.yml.j2 (commented, with the schema line editors read); it is loaded and
validated with the project's own loader before it is written, and an existing file is never
overwritten.

Hosts are written by name only: when mae-launch connects, OpenSSH's own view of each name (`ssh -G`,
launcher/sshconf.py) gives its address, port, user, keys, known hosts and jump hosts. A config file
other than ~/.ssh/config (`--ssh-config FILE`) is named in the inventory as `ssh.ssh_config`, which
those look-ups then read (`ssh -F`).
"""
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from launcher import hostfile, sshhosts
from launcher.errors import UserError
from launcher.inventory import PACKAGE_ROOT, parse_inventory
from launcher.render import make_environment
from launcher.schema import NAME_PATTERN

SCHEMA_FILE = PACKAGE_ROOT / "inventories" / "inventory.schema.json"
_PLAIN = re.compile(r"^[A-Za-z0-9_./~][A-Za-z0-9_./~@:+-]*$")


def yaml_scalar(value) -> str:
    """One YAML scalar: plain when it reads back as the same string, else double-quoted (JSON)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"not a scalar for an inventory: {value!r}")
    if isinstance(value, int):
        return str(value)
    if _PLAIN.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _oneline(value) -> str:
    return " ".join(str(value).split())


_ENV = make_environment()
_ENV.filters.update(yaml=yaml_scalar, oneline=_oneline)


@dataclass
class Request:
    name: str
    path: Path
    ssh_config: Path = field(default_factory=sshhosts.user_config)
    from_ssh_config: Optional[str] = None
    hostfile: Optional[Path] = None
    slurm: bool = False
    partition: Optional[str] = None
    ssh: dict = field(default_factory=dict)      # inventory-wide ssh keys given as options
    workdir: str = "~/mae-launch"
    venv: str = ".venv"
    data: Optional[str] = None
    master_port: int = 29500


def default_path(name: str, cwd: Path) -> Path:
    """inventories/NAME.yml where the current directory has an inventories/ folder, else NAME.yml."""
    return cwd / "inventories" / f"{name}.yml" if (cwd / "inventories").is_dir() else cwd / f"{name}.yml"


def _own_config(path: Path) -> bool:
    try:
        return path.resolve() == sshhosts.user_config().resolve()
    except OSError:
        return False


def _hosts(req: Request) -> tuple:
    """(hosts [{name, slots}], nproc, source text)."""
    if req.from_ssh_config is not None:
        names = sshhosts.matching(sshhosts.aliases(req.ssh_config), req.from_ssh_config)
        if not names:
            raise UserError(f"no Host in {req.ssh_config} matches {req.from_ssh_config!r}; "
                            "give a pattern that matches the hosts' names there (e.g. 'gpu*')")
        hosts, nproc = [{"name": n, "slots": None} for n in names], None
        source = f"the hosts matching {req.from_ssh_config} in {req.ssh_config}"
    else:
        listed = hostfile.read(req.hostfile)
        nproc = hostfile.common_slots(listed, req.hostfile)
        hosts = [{"name": n, "slots": s} for n, s in listed]
        source = f"the hostfile {req.hostfile}"
    return hosts, nproc, source


def _schema_path(path: Path) -> str:
    """The schema file as the yaml-language-server line names it: relative within the project."""
    folder = path.resolve().parent
    if folder == PACKAGE_ROOT or PACKAGE_ROOT in folder.parents:
        return os.path.relpath(SCHEMA_FILE, folder)
    return str(SCHEMA_FILE)


def render(req: Request, slurm_found: Optional[dict] = None) -> str:
    """The inventory text for `req`, validated with the project's loader. `slurm_found`: what
    slurminfo.section gives (default: asked of this host's Slurm)."""
    if not re.match(NAME_PATTERN, req.name):
        raise UserError(f"inventory name {req.name!r} is not a plain name (letters, digits, '.', '_', '-'; "
                        "not starting with '.' or '-'); choose one such as gpu-lab")
    sources = [req.from_ssh_config is not None, req.hostfile is not None, req.slurm]
    if sum(sources) != 1:
        raise UserError("give one source: --from-ssh-config PATTERN, --hostfile FILE or --slurm")
    ssh = dict(req.ssh)
    if not req.slurm and not _own_config(req.ssh_config):
        ssh.setdefault("ssh_config", str(req.ssh_config))  # the hosts' settings are OpenSSH's view from it
    data = dict(name=req.name, path=str(req.path), ssh=ssh, workdir=req.workdir, venv=req.venv,
                data=req.data, hosts=[], nproc=None, slurm=None, notes={}, slurm_default=False,
                master_port=req.master_port, config=str(req.ssh_config), schema_path=_schema_path(req.path))
    if req.slurm:
        from launcher import slurminfo
        found = slurm_found or slurminfo.slurm_section(req.partition)
        data.update(slurm=found["slurm"], notes=found["notes"], slurm_default=req.partition is None,
                    source="the partitions Slurm reports on this machine (scontrol show partition, sinfo)")
    else:
        hosts, nproc, source = _hosts(req)
        data.update(hosts=hosts, nproc=nproc, source=source)
    text = _ENV.get_template("inventory.yml.j2").render(**data)
    parse_inventory(text, req.path)  # InventoryError (exit 2) names what is wrong
    return text


def write(req: Request) -> Path:
    """Render and write `req.path`; an existing file is left alone (UserError)."""
    if req.path.exists():
        raise UserError(f"{req.path} already exists; mae-launch never overwrites an inventory: give another name or --output PATH")
    text = render(req)
    req.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(req.path, "x") as f:
            f.write(text)
    except FileExistsError:
        raise UserError(f"{req.path} already exists; mae-launch never overwrites an inventory: give another name or --output PATH") from None
    return req.path
