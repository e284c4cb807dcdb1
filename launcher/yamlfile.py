"""Read a YAML file as data, remembering the line of every mapping key and list item.

`load(path)` returns (data, lines) where `lines` maps a key path (a tuple of strings, list indexes
as decimal strings) to its 1-based line, so schema errors can point at `file:line`. A key written
twice in one mapping is not silently overwritten: `lines.duplicates` lists each (key path, first
line, second line), and the inventory loader refuses them.
"""
from pathlib import Path

import yaml

from launcher.errors import InventoryError

MAX_NODES = 100_000  # aliases can make a small file describe a huge tree; refuse beyond this
MAX_DEPTH = 64       # an inventory is a handful of levels deep


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader (plain data only: no Python objects); libyaml's when available."""


class Lines(dict):
    """key path -> line, plus `duplicates`: [(key path, first line, repeated line)]."""

    def __init__(self, *args):
        super().__init__(*args)
        self.duplicates: list = []


def _where(path: Path, mark) -> str:
    return f"{path}:{mark.line + 1}" if mark is not None else str(path)


def _record_lines(root, lines: dict) -> None:
    stack = [(root, ())]
    seen = 0
    while stack:
        node, key_path = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ValueError(f"the document expands to more than {MAX_NODES} values")
        if len(key_path) > MAX_DEPTH:
            raise ValueError(f"the document is nested more than {MAX_DEPTH} levels deep (recursive alias?)")
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    child = key_path + (str(key_node.value),)
                    line = key_node.start_mark.line + 1
                    if child in first:
                        lines.duplicates.append((child, first[child], line))
                        continue
                    first[child] = line
                    lines.setdefault(child, line)
                    stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = key_path + (str(index),)
                lines.setdefault(child, item.start_mark.line + 1)
                stack.append((item, child))


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before the (recursive) composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=mark)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def load(path) -> tuple[object, dict]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read the inventory ({exc.strerror or exc}); check the path") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: the inventory is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return loads(text, path)


def loads(text: str, path) -> tuple[object, dict]:
    path = Path(path)
    lines = Lines({(): 1})
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        msg = " ".join(str(exc).split())
        raise InventoryError(f"{path}: YAML error: {msg}") from None
    try:
        _check_depth(text)
        node = loader.get_single_node()
        if node is None:
            return None, lines
        _record_lines(node, lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        if _is_tab(text, mark, problem):
            problem = "a tab character; YAML indents with spaces only, so replace the tab with spaces"
        raise InventoryError(f"{_where(path, mark)}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        msg = " ".join(str(exc).split())
        raise InventoryError(f"{path}: YAML error: {msg}") from None
    except RecursionError:
        raise InventoryError(f"{path}: the YAML is nested too deeply to be an inventory") from None
    except (ValueError, TypeError, OverflowError) as exc:
        msg = " ".join(str(exc).split())
        raise InventoryError(f"{path}: YAML value cannot be read ({msg})") from None
    finally:
        loader.dispose()
    return data, lines


def _is_tab(text: str, mark, problem: str) -> bool:
    """Was this syntax error caused by a tab (the usual hidden culprit)?"""
    if "\\t" in problem or "tab" in problem.lower():
        return True
    if mark is None:
        return False
    lines = text.splitlines()
    if mark.line < len(lines):
        row = lines[mark.line]
        return "\t" in row[: mark.column + 1] or (mark.column < len(row) and row[mark.column] == "\t")
    return False


def line_of(lines: dict, loc) -> int:
    """Line of the longest prefix of `loc` that has one (1 for the document itself)."""
    key = tuple(str(part) for part in loc)
    while key and key not in lines:
        key = key[:-1]
    return lines.get(key, 1)
