"""DeepSpeed / MPI hostfiles, for `mae-launch inventory new --hostfile`.

One host a line, `hostname slots=N` (DeepSpeed's format; Open MPI's `max_slots=M` is accepted and
ignored); `#` starts a comment, blank lines are skipped. A line without `slots=` is refused, as
DeepSpeed refuses it: mae-launch needs the processes per host.
"""
import re
from pathlib import Path

from launcher.errors import UserError

_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:%-]*$")


def parse(text: str, path="<hostfile>") -> list:
    """[(host, slots)] in file order."""
    hosts, seen = [], set()
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path}:{number}"
        name, slots = words[0], None
        if not _HOST.match(name):
            raise UserError(f"{where}: {name!r} is not a host name; write `hostname slots=N`")
        for word in words[1:]:
            key, _, value = word.partition("=")
            if key == "slots" and value.isdigit() and int(value) >= 1:
                slots = int(value)
            elif key != "max_slots":
                raise UserError(f"{where}: {word!r} is not understood; write `hostname slots=N`")
        if slots is None:
            raise UserError(f"{where}: host {name!r} has no slots=N; write `{name} slots=N` (processes on that host)")
        if name in seen:
            raise UserError(f"{where}: host {name!r} is listed twice; list it once")
        seen.add(name)
        hosts.append((name, slots))
    if not hosts:
        raise UserError(f"{path}: no host in this hostfile; write one `hostname slots=N` line per host")
    return hosts


def read(path) -> list:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read the hostfile {path} ({exc.strerror}); give an existing file") from None
    return parse(text, path)


def common_slots(hosts: list, path) -> int:
    """The one slot count of every host (torchrun starts nproc_per_node processes on each host)."""
    counts = sorted({slots for _, slots in hosts})
    if len(counts) > 1:
        listed = ", ".join(f"{name}: {slots}" for name, slots in hosts)
        raise UserError(f"{path}: hosts have different slots ({listed}); mae-launch runs the same number of "
                        "processes on every host: make them equal or list only hosts with equal slots")
    return counts[0]
