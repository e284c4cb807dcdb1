"""mae-launch's own files in a host's workdir: one list, shared by setup, deploy, check and launches.

A workdir holds the synced project plus these: the layout mae-launch keeps there (the venv, data,
outputs and run folders deploy's `--delete` never touches) and the files setup and deploy record
(setup's hash and requirements, its synced wheels, deploy's owner marker and content hash). Deploy
never deletes any of them, a workdir that holds nothing else is mae-launch's to deploy into, and a
launch finds nothing foreign there.
"""
from __future__ import annotations

OWNER_MARKER = ".mae-launch-workdir"           # deploy: this workdir is mae-launch's
HASH_MARKER = ".mae-launch-deploy"             # deploy: the content hash of the last deploy
SETUP_MARKER = ".mae-launch-setup"             # setup: the hash of the last complete setup
SETUP_REQUIREMENTS = ".mae-launch-requirements.txt"  # setup: what it installed into the venv
WHEELS = ".mae-launch-wheels"                  # setup: the synced wheelhouse (--wheelhouse)

KEPT_NAMES = frozenset({".venv", "venv", "data", "output", "runs"})  # first components deploy keeps
RECORDS = frozenset({OWNER_MARKER, HASH_MARKER, SETUP_MARKER, SETUP_REQUIREMENTS, WHEELS})
# what a workdir may hold that mae-launch did not sync: the kept layout and the records, with the
# temporary files the records are written through
LAYOUT = sorted(KEPT_NAMES | RECORDS | {HASH_MARKER + ".tmp", SETUP_MARKER + ".tmp"})


def rsync_protect() -> list[str]:
    """Anchored rsync exclude patterns of the records: never sent, never deleted by --delete."""
    return ["/" + name + ("/" if name == WHEELS else "") for name in sorted(RECORDS)] + \
           ["/" + HASH_MARKER + ".tmp", "/" + SETUP_MARKER + ".tmp"]
