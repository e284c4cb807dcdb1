"""Sentences for inventory errors: `file:line: key.path: what is wrong; what to do`.

`Where` knows the file and the line of every key (from launcher/yamlfile.py); `schema_problems` turns
every pydantic validation error (in file order) into one such sentence, with a did-you-mean for an
unknown key.
"""
import difflib
import types
import typing
from pathlib import Path

import pydantic

from launcher import schema, yamlfile
from launcher.errors import InventoryError
from launcher.schema import InventorySpec


class Where:
    """Builds `file:line: key.path: message` sentences."""

    def __init__(self, path: Path, lines: dict):
        self.path, self.lines = path, lines

    def error(self, loc, message: str) -> InventoryError:
        line = yamlfile.line_of(self.lines, loc)
        key = _key_path(loc)
        return InventoryError(f"{self.path}:{line}: {key + ': ' if key else ''}{message}")


def _key_path(loc) -> str:
    """`jobs.pretrain.args[2]`; a key that is empty or holds spaces or control characters is quoted
    (repr), so a message stays one line."""
    out = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            text = str(part)
            plain = text and text.isprintable() and not any(c.isspace() for c in text)
            out += ("." if out else "") + (text if plain else repr(text))
    return out


def _unwrap(tp):
    """Strip Optional[...] and Annotated[...] from a type annotation."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _allowed_keys(model, loc) -> list:
    """Keys allowed in the mapping at `loc` (for 'unknown key' messages); [] when not a schema mapping."""
    tp = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if part not in fields:
                return []
            tp = fields[part].annotation
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return sorted((f.alias or n) for n, f in tp.model_fields.items())
    return []


_PATTERN_WORDS = {
    schema.NAME_PATTERN: "a plain name (letters, digits, '.', '_', '-'; not starting with '.' or '-')",
    schema.HOST_PATTERN: "a host name or range (letters, digits, '.', '_', '-', ranges like node[01-04])",
    schema.ADDRESS_PATTERN: "a host name or IP address",
    schema.USER_PATTERN: "a user name",
    schema.PROXY_PATTERN: "a ProxyJump value ([user@]host[:port][,...])",
    schema.ENV_PATTERN: "a shell variable name (letters, digits, '_'; not starting with a digit)",
    schema.IFACE_PATTERN: "a network interface name",
    schema.PATH_PATTERN: "a path (NUL characters are not allowed)",
    schema.SLURM_TIME_PATTERN: "a Slurm time limit (minutes, [days-]hours:minutes:seconds or UNLIMITED)",
    schema.CONSTRAINT_PATTERN: "a Slurm constraint (features joined by & or |, no spaces)",
    schema.SBATCH_ARG_PATTERN: "one sbatch option as --name or --name=value (no spaces, quotes or '#')",
}


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def schema_problems(where: Where, exc: pydantic.ValidationError) -> list:
    """Every pydantic validation error, in file order, as `file:line: key.path: ...` sentences."""
    errors = exc.errors(include_url=False)
    errors.sort(key=lambda e: yamlfile.line_of(where.lines, [p for p in e["loc"] if p != "[key]"]))
    return [str(where.error([p for p in e["loc"] if p != "[key]"], _describe(e))) for e in errors]


def schema_error(where: Where, exc: pydantic.ValidationError) -> InventoryError:
    return InventoryError(*schema_problems(where, exc))


def did_you_mean(word: str, allowed) -> str:
    close = difflib.get_close_matches(str(word), list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(error: dict) -> str:
    loc = [p for p in error["loc"] if p != "[key]"]
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(InventorySpec, loc[:-1])
        hint = did_you_mean(loc[-1], allowed) if allowed else ""
        return f"unknown key{hint}" + (f" (allowed keys here are {', '.join(allowed)})" if allowed else "; remove it")
    if kind == "missing":
        return "this key is required; add it"
    if kind == "string_pattern_mismatch" and error.get("input") == "":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        what = _PATTERN_WORDS.get((error.get("ctx") or {}).get("pattern"), "characters not allowed here")
        return f"{_short(error['input'])} is not {what}"
    if kind == "literal_error":
        return error["msg"].replace("Input should be", "must be")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping (key: value entries)"
    if kind == "too_short":
        return "must not be empty; list at least one item"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    msg = error["msg"].replace("Input should be", "must be")
    if "[key]" in error["loc"]:
        return f"bad name ({msg})"
    if "env" not in loc:  # never echo what may be a secret
        msg += f" (got {_short(error.get('input'))})"
    return msg


def duplicate_problems(where: Where) -> list:
    """Keys written twice in one mapping (YAML would silently keep the second)."""
    out = []
    for key_path, first, again in getattr(where.lines, "duplicates", []):
        out.append(f"{where.path}:{again}: {_key_path(key_path)}: written twice (lines {first} and {again}); "
                   "keep one (YAML would silently use the second)")
    return out
