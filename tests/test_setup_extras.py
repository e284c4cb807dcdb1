"""What `setup` installs: the project's pins, plus wandb when a job passes --wandb or `setup.extras`
names it (hosts set up without it only warn when a job logs to W&B)."""
import pytest

from launcher import provision
from launcher.inventory import InventoryError, parse_inventory

BASE = """
name: t
launcher: torchrun
hosts: [{name: localhost, connection: local}]
"""


def _requirements(text: str) -> list:
    return provision.requirements_text(parse_inventory(BASE + text)).splitlines()


def test_wandb_is_installed_when_a_job_passes_wandb():
    plain = _requirements("jobs: {pretrain: {config: digits_pretrain}}\n")
    assert not any(r.startswith("wandb") for r in plain)
    used = _requirements("jobs: {pretrain: {config: digits_pretrain, args: [--epochs, '1', --wandb]}}\n")
    assert "wandb>=0.17" in used and set(plain) < set(used)


def test_setup_mapping_with_extras_and_commands():
    text = "setup: {commands: ['echo {{ host }}'], extras: [wandb]}\njobs: {pretrain: {config: digits_pretrain}}\n"
    inv = parse_inventory(BASE + text)
    assert "wandb>=0.17" in provision.requirements_text(inv).splitlines()
    assert provision.commands(inv, inv.hosts[0]) == ["echo localhost"]
    listed = parse_inventory(BASE + "setup: ['echo hi']\njobs: {pretrain: {config: digits_pretrain}}\n")
    assert provision.commands(listed, listed.hosts[0]) == ["echo hi"]


def test_unknown_extra_is_bad_input():
    with pytest.raises(InventoryError) as e:
        parse_inventory(BASE + "setup: {extras: [tensorflow]}\njobs: {pretrain: {config: digits_pretrain}}\n")
    assert "setup.extras" in str(e.value)
