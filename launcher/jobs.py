"""The one table of job kinds: what `python -m` entry runs each job, which kind of named config it
takes, which job it consumes by default and the flag that hands it the consumed checkpoint.

Every module that needs a fact about a job kind reads it here (the inventory schema and checks, the
planner, the pipeline). Pure data; imports nothing of the launcher.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class JobKind:
    name: str                      # pretrain | finetune | validate
    entry: str                     # python -m <entry>
    config_kind: str               # the `job:` of the named config it needs (mae/configs.yml)
    consumes: Optional[str]        # job it consumes when the inventory does not say
    consume_flag: Optional[str]    # program flag that receives the consumed checkpoint
    resumable: bool                # `--resume` continues it from its own last checkpoint


JOB_KINDS: dict[str, JobKind] = {
    "pretrain": JobKind("pretrain", "mae.pretrain", "pretrain", None, None, True),
    "finetune": JobKind("finetune", "mae.finetune", "finetune", "pretrain", "--finetune", True),
    "validate": JobKind("validate", "mae.validate", "finetune", "finetune", "--resume", False),
}
JOB_NAMES = tuple(JOB_KINDS)       # also the pipeline's order
