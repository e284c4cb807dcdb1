"""Host ranges: `pod64-host[0-3]`, `node[01-04]`, `rack[1-2]-gpu[0,2,5-6]` expand to host names."""
import itertools
import re

MAX_HOSTS = 4096
_GROUP = re.compile(r"\[([^\[\]]*)\]")


def _expand_group(body: str, pattern: str) -> list[str]:
    names = []
    for item in body.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise ValueError(f"host range {pattern!r} has a bad item {item!r}; write ranges as name[0-3] or name[01-04,07]")
        start, end = m.group(1), m.group(2) if m.group(2) is not None else m.group(1)
        lo, hi = int(start), int(end)
        if lo > hi:
            raise ValueError(f"host range {pattern!r} counts backwards ({item}); write the smaller number first")
        if hi - lo + 1 > MAX_HOSTS:
            raise ValueError(f"host range {pattern!r} names more than {MAX_HOSTS} hosts")
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        names.extend(str(i).zfill(width) for i in range(lo, hi + 1))
    return names


def expand(pattern: str) -> list[str]:
    """Expand every [..] group of `pattern` (cartesian product, left to right); no group: [pattern]."""
    if "[" not in pattern and "]" not in pattern:
        return [pattern]
    parts = _GROUP.split(pattern)  # literal, group, literal, group, ..., literal
    literals, groups = parts[0::2], parts[1::2]
    if any("[" in lit or "]" in lit for lit in literals):
        raise ValueError(f"host range {pattern!r} has unbalanced or nested brackets")
    choices = [_expand_group(g, pattern) for g in groups]
    total = 1
    for c in choices:
        total *= len(c)
        if total > MAX_HOSTS:
            raise ValueError(f"host range {pattern!r} names more than {MAX_HOSTS} hosts")
    out = []
    for combo in itertools.product(*choices):
        name = literals[0]
        for value, lit in zip(combo, literals[1:]):
            name += value + lit
        out.append(name)
    return out
