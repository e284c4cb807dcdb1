"""The one Jinja environment that turns data into shell text (templates/ of the project).

- StrictUndefined: a missing variable is an error, never an empty string.
- `q`: shell-quote one value (shlex.quote of str(value)). A `HostPath` starting with `~/` renders as
  "$HOME"/'rest' so the host's home is used and the rest stays one quoted word. None is refused.
- `qpath`: the same for any string meant as a host path (`~/` honoured).
- `envname`: a variable name, checked to be a shell identifier (it is written unquoted).
- `sbatchw`: a value of an `#SBATCH` line. sbatch is not a shell: the value must be one word without
  quotes, backslashes, '#' or spaces (the inventory schema admits no other), written as it is.
Templates never interpolate a value into a comment: a newline in it would end the comment.
"""
import re
import shlex
from pathlib import Path

import jinja2

from launcher.paths import HostPath

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SBATCH_WORD = re.compile(r"[^\s'\"\\#]+")


def _quote_path(text: str) -> str:
    if text == "~":
        return '"$HOME"'
    if text.startswith("~/"):
        rest = text[2:]
        return '"$HOME"/' + shlex.quote(rest) if rest else '"$HOME"/'
    return shlex.quote(text)


def q(value) -> str:
    """Shell-quote `value` as one word."""
    if value is None or isinstance(value, jinja2.Undefined):
        raise ValueError("refusing to shell-quote None/undefined: the template data is incomplete")
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, HostPath):
        return _quote_path(str(value))
    return shlex.quote(str(value))


def qpath(value) -> str:
    """Shell-quote a host path; a leading `~/` means the host's home."""
    if value is None or isinstance(value, jinja2.Undefined):
        raise ValueError("refusing to shell-quote None/undefined: the template data is incomplete")
    return _quote_path(str(value))


def envname(value) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ValueError(f"{value!r} is not a shell variable name")
    return value


def sbatchw(value) -> str:
    if value is None or isinstance(value, jinja2.Undefined) or isinstance(value, bool):
        raise ValueError("refusing to write None/undefined/bool in an #SBATCH line")
    text = str(value)
    if not _SBATCH_WORD.fullmatch(text):
        raise ValueError(f"{text!r} cannot be written in an #SBATCH line (spaces, quotes, '\\' or '#')")
    return text


def shjoin(values) -> str:
    """Quote each value and join with spaces: one shell word per value."""
    return " ".join(q(v) for v in values)


def make_environment(directory: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(q=q, qpath=qpath, envname=envname, shjoin=shjoin, sbatchw=sbatchw)
    return env


ENV = make_environment()


def render_template(name: str, **data) -> str:
    """Render templates/<name> with `data`."""
    return ENV.get_template(name).render(**data)
