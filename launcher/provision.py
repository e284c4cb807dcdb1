"""What `setup` installs on a host, and the hash that says whether a host is up to date. Pure but for
reading the requirements file here.

Each `setup:` line of the inventory is a shell line written by its author, rendered as a template
(the `q` filter and `host`, `workdir`, `venv`, `python` are available). The hash covers the rendered
lines, the requirements and the host's Python version.
"""
from __future__ import annotations

import hashlib
import json
import pathlib

from launcher.errors import UserError
from launcher.inventory import PACKAGE_ROOT
from launcher.ownfiles import SETUP_MARKER
from launcher.render import ENV

PYTHON = "python3"         # the host's Python that creates the venv
MARKER = SETUP_MARKER


def requirements_text(inv) -> str:
    """The requirements to install: `paths.requirements` (a file here), else the project's pins."""
    if inv.paths.requirements:
        path = pathlib.Path(inv.paths.requirements).expanduser()
        if not path.is_absolute():
            path = pathlib.Path(inv.source_path).resolve().parent / path
        try:
            return path.read_text().strip()
        except OSError as err:
            raise UserError(f"{inv.source_path}: paths.requirements {path} cannot be read ({err.strerror})") from None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python before 3.11 (e.g. the Poplar SDK's): the tomli backport
        import tomli as tomllib
    project = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    # the default profile: the open dependencies plus the cpu-gpu pins (torch, torchvision, timm)
    return "\n".join(project["dependencies"] + extras.get("cpu-gpu", []) +
                     [req for name in wanted_extras(inv) for req in extras.get(name, [])])


def wanted_extras(inv) -> list[str]:
    """The project's optional parts a host needs: `setup.extras`, and `wandb` when a job passes --wandb."""
    wanted = list(inv.spec.setup.extras)
    uses_wandb = any("--wandb" in (job.args or []) for job in inv.jobs.values())
    if uses_wandb and "wandb" not in wanted:
        wanted.append("wandb")
    return wanted


def commands(inv, host) -> list[str]:
    """The inventory's setup lines rendered for `host`."""
    values = dict(host=host.name, workdir=host.workdir, venv=inv.host_path(host, inv.paths.venv), python=PYTHON)
    out = []
    for i, line in enumerate(inv.spec.setup.commands):
        try:
            out.append(ENV.from_string(line).render(**values))
        except Exception as err:  # noqa: BLE001 - a template error in user data is bad input
            raise UserError(f"{inv.source_path}: setup[{i}] cannot be rendered ({err})") from None
    return out


def setup_hash(rendered: list[str], requirements: str, python_version: str) -> str:
    blob = json.dumps({"commands": rendered, "requirements": requirements, "python": python_version})
    return hashlib.sha256(blob.encode()).hexdigest()


def expected_hash(inv, host, python_version: str) -> str:
    return setup_hash(commands(inv, host), requirements_text(inv), python_version)
