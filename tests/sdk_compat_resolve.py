"""Prove that the project's ``.[test]`` requirements resolve with the SDK's constraints for a Python the
Poplar SDK ships (``make test-sdk-compat`` runs it for 3.8 and 3.10).

    python tests/sdk_compat_resolve.py --python-version 3.8 [--constraints constraints/torch-2.0.1.txt]

The requirements of pyproject.toml (``dependencies`` and the ``test`` extra, their markers evaluated for
the target Python on x86-64 Linux) go to pip's resolver with ``--dry-run --python-version X
--only-binary :all:``: wheels only, nothing installed, and only metadata fetched where the index
serves it (PEP 658). Prints the versions chosen for torch, torchvision, timm and numpy; exit 1 with
pip's own message when nothing satisfies them. (mpi4py, which ``make install-ipu`` adds, publishes no
Linux wheels: it is built from source on the SDK host and left out here.)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHOWN = ("torch", "torchvision", "timm", "numpy", "scikit-image", "tensorboard", "matplotlib", "scikit-learn")


def _environment(version: str) -> dict:
    return {"python_version": version, "python_full_version": f"{version}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def requirements(version: str) -> list[str]:
    """The project's requirements (with the test extra) that apply on CPython ``version``."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if f"{version}.0" not in SpecifierSet(project["requires-python"]):
        raise SystemExit(f"pyproject.toml requires-python {project['requires-python']} excludes Python {version}")
    out = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(_environment(version)):
            req.marker = None
            out.append(str(req))
    return out


def resolve(version: str, constraints: pathlib.Path, timeout: float = 900.0) -> dict:
    """``{name: version}`` pip's resolver picks; raises SystemExit(1) with pip's message when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        reqs, report = pathlib.Path(tmp) / "requirements.txt", pathlib.Path(tmp) / "report.json"
        reqs.write_text("\n".join(requirements(version)) + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "--python-version", version, "--implementation", "cp",
               "--platform", "manylinux2014_x86_64", "--only-binary", ":all:", "-c", str(constraints), "-r", str(reqs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            lines = [ln[:400] for ln in proc.stderr.splitlines()
                     if ln.strip() and "is ignored" not in ln and "require a different python version" not in ln]
            print(f"sdk-compat: Python {version}: pip could not resolve .[test] with {constraints}:", file=sys.stderr)
            print("\n".join(lines[-15:]), file=sys.stderr)
            raise SystemExit(1)
        installs = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/sdk_compat_resolve.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--python-version", required=True, help="e.g. 3.8 or 3.10")
    ap.add_argument("--constraints", type=pathlib.Path, default=ROOT / "constraints" / "torch-2.0.1.txt")
    args = ap.parse_args(argv)
    chosen = resolve(args.python_version, args.constraints)
    shown = ", ".join(f"{n} {chosen[n]}" for n in SHOWN if n in chosen)
    print(f"sdk-compat: Python {args.python_version}: .[test] resolves with {args.constraints.name}: {shown} "
          f"({len(chosen)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
