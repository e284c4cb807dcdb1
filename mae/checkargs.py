"""``python -m mae.checkargs JOB ARG...``: parse ARG... exactly as ``python -m mae.JOB`` would, and
nothing more (no torch, no data, no device), so a launcher can refuse a mistyped program argument
before it starts anything.

Exit 0 printing ``reads_data=1`` (the job reads ``--data_path``) or ``reads_data=0`` (it has none,
or pretrains on ``--generated_data``); exit 2 with the parser's one-line error on stderr
(``unknown config key 'epoch' (flag --epoch); did you mean --epochs?``).
"""
from __future__ import annotations

import sys

from mae import config
from mae.errors import EXIT_USAGE, UserError


def reads_data(job: str, cfg) -> bool:
    """Whether ``job`` will read ``cfg.data_path`` (pretraining on generated data does not; finetune
    and validate always read it)."""
    return bool(cfg.data_path) and not (job == "pretrain" and cfg.generated_data)


def check(job: str, argv: list[str]) -> bool:
    """Parse ``argv`` for ``job`` (ConfigError on a bad argument); whether the job reads its data path."""
    if job not in config.JOBS:
        raise UserError(f"unknown job '{job}'; use one of {', '.join(config.JOBS)}")
    argv = [a for a in argv if a != "--print_config"]  # parse only: never print and exit 0
    return reads_data(job, config.parse(argv, job=job))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m mae.checkargs JOB [ARG ...]", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = check(argv[0], argv[1:])
    except UserError as err:
        print(err, file=sys.stderr, flush=True)
        return EXIT_USAGE
    print(f"reads_data={int(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
