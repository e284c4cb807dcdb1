"""The hosts an OpenSSH client config defines, for `mae-launch inventory new --from-ssh-config`.

`aliases(path)` lists the names of its `Host` lines (following `Include`, as ssh_config(5) says:
relative paths are under ~/.ssh, globs allowed, at most 16 levels); words with `*`, `?` or `!` are
patterns, not hosts. `matching(names, pattern)` keeps those matching a pattern list the way ssh
matches `Host` lines (`a*,b?`, `!` negates). What a host's settings are is OpenSSH's own answer
(`ssh -G`), asked when mae-launch connects (launcher/sshconf.py), never read here.
"""
import fnmatch
import glob
import os
import shlex
from pathlib import Path

from launcher.errors import UserError

MAX_DEPTH = 16          # OpenSSH's READCONF_MAX_DEPTH


def user_config() -> Path:
    return Path(os.path.expanduser("~/.ssh/config"))


def _words(line: str) -> list:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: ssh refuses the line too
        return []


def _keyword(words: list) -> tuple:
    """`Host a b`, `Host=a b`: (keyword in lower case, arguments)."""
    if not words:
        return "", []
    head, rest = words[0], words[1:]
    if "=" in head:
        head, _, first = head.partition("=")
        rest = ([first] if first else []) + rest
    elif rest and rest[0].startswith("="):
        rest = ([rest[0][1:]] if rest[0][1:] else []) + rest[1:]
    return head.lower(), rest


def _include(argument: str) -> list:
    path = os.path.expanduser(argument)
    if not os.path.isabs(path):
        path = os.path.join(os.path.expanduser("~/.ssh"), path)
    return [Path(p) for p in sorted(glob.glob(path))]


def aliases(path, depth: int = 0) -> list:
    """Host names (not patterns) of the `Host` lines of `path` and the files it includes, in order."""
    path = Path(path)
    if depth > MAX_DEPTH:
        raise UserError(f"{path}: Include nested more than {MAX_DEPTH} levels deep; remove the loop")
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read the ssh config {path} ({exc.strerror}); give an existing file with --ssh-config") from None
    names = []
    for line in text.splitlines():
        keyword, args = _keyword(_words(line))
        if keyword == "include":
            for arg in args:
                for included in _include(arg):
                    names.extend(aliases(included, depth + 1))
        elif keyword == "host":
            names.extend(a for a in args if not any(c in a for c in "*?!"))
    return list(dict.fromkeys(names))


def matching(names: list, pattern: str) -> list:
    """The names a `Host`-style pattern list matches (comma-separated, `!` negates, case-insensitive)."""
    def match(name):
        hit = False
        for part in (p.strip() for p in pattern.split(",") if p.strip()):
            negated = part.startswith("!")
            if fnmatch.fnmatchcase(name.lower(), part.lstrip("!").lower()):
                if negated:
                    return False
                hit = True
        return hit
    return [n for n in names if match(n)]
