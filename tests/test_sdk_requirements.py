"""The project's requirements on the Poplar SDK's Pythons (3.8 on Ubuntu 20.04, 3.10 on 22.04): every
requirement must have a release for that Python. Resolution against the registry itself is
`make test-sdk-compat` (tests/sdk_compat_resolve.py); this checks the markers offline."""
from __future__ import annotations

import sys

import pytest

sys.path.insert(0, __import__("os").path.dirname(__file__))
import sdk_compat_resolve  # noqa: E402

pytestmark = pytest.mark.sdk_compat

#: the newest releases that still install on Python 3.8 (their later releases require 3.9+)
LAST_FOR_38 = {"tensorboard": "2.14", "scikit-image": "0.21", "matplotlib": "3.7", "scikit-learn": "1.3"}


def _floors(version: str) -> dict:
    from packaging.requirements import Requirement

    out = {}
    for line in sdk_compat_resolve.requirements(version):
        req = Requirement(line)
        floors = [s.version for s in req.specifier if s.operator in (">=", "==")]
        out[req.name] = floors[0] if floors else None
    return out


def test_every_requirement_has_a_release_for_python_38():
    from packaging.version import Version

    floors = _floors("3.8")
    for name, last in LAST_FOR_38.items():
        assert floors[name] is not None and Version(floors[name]) <= Version(last), (name, floors[name])
    assert "tomli" in floors  # Python < 3.11 reads TOML through tomli


def test_python_310_keeps_the_newer_floors():
    floors = _floors("3.10")
    assert floors["tensorboard"] == "2.16" and floors["scikit-image"] == "0.22"
