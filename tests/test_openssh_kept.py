"""Kept OpenSSH masters live only in a directory of the login user's own (launcher/openssh.py)."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from launcher import openssh


@pytest.fixture
def short(monkeypatch):
    """A short $XDG_RUNTIME_DIR (pytest's tmp_path is too long for a socket path)."""
    path = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path)


def test_the_kept_directory_is_created_private(short):
    path = openssh.kept_dir()
    assert path == str(short / f"mae-launch-{os.getuid()}")
    assert os.stat(path).st_mode & 0o777 == 0o700


def test_a_directory_open_to_others_or_a_symlink_is_not_trusted(short):
    shared = short / f"mae-launch-{os.getuid()}"
    shared.mkdir(mode=0o700)
    shared.chmod(0o755)
    assert openssh.kept_dir() is None
    shared.rmdir()
    (short / "elsewhere").mkdir(mode=0o700)
    shared.symlink_to(short / "elsewhere")
    assert openssh.kept_dir() is None


def test_a_path_too_long_for_a_socket_is_not_used(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 30)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    assert openssh.kept_dir() is None
    assert not any(deep.iterdir())
