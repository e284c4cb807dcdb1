"""The generated reference pages of the documentation site (mkdocs `hooks:`, see mkdocs.yml).

A page whose Markdown holds a line `<!-- generated: NAME -->` gets that line replaced, at every build,
by the text of GENERATORS[NAME]: the CLI from the click commands (launcher/cli.py), the inventory keys
from the pydantic schema (launcher/schema.py, as `mae-launch inventory schema` writes it), the named
configs from mae/configs.yml. The pages cannot drift from the code: they are the code, read at build
time. tests/test_docs.py builds the same text with these functions.
"""
import html
import inspect
import json
import pathlib
import re

import click
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)


def _text(value: str) -> str:
    """Help text as Markdown text: HTML and emphasis characters escaped, click's `\\b` marks dropped."""
    value = "\n".join(line for line in inspect.cleandoc(value or "").splitlines() if line.strip() != "\b")
    return re.sub(r"([\\*_\[\]])", r"\\\1", html.escape(value, quote=False))


def _cell(value: str) -> str:
    return " ".join(_text(value).split()).replace("|", "\\|")


def _default(ctx: click.Context, param: click.Parameter) -> str:
    default = param.get_default(ctx, call=False)
    unset = type(default).__name__ == "Sentinel"  # click 8.2+: no default
    if unset or callable(default) or default in (None, (), []) or (getattr(param, "is_flag", False) and not default):
        return ""
    if isinstance(default, (list, tuple)):
        default = " ".join(str(v) for v in default)
    return f"`{default}`"


def _params_table(ctx: click.Context, command: click.Command) -> list:
    rows = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):
            continue
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        names, help_text = record
        help_text = re.sub(r"\s*\[(default|required)[^\]]*\]$", "", help_text)
        rows.append(f"| `{names}` | {_cell(help_text)} | {_default(ctx, param)} |")
    if not rows:
        return []
    return ["| option | what it does | default |", "|---|---|---|", *rows, ""]


def _command_section(ctx: click.Context, command: click.Command, path: str, level: int) -> list:
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"{'#' * level} `{path}`", "", "```text", f"{path} {usage}".rstrip(), "```", ""]
    if command.help:
        lines += [_text(command.help), ""]
    lines += _params_table(ctx, command)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            with click.Context(sub, info_name=name, parent=ctx) as sub_ctx:
                lines += _command_section(sub_ctx, sub, f"{path} {name}", level + 1)
    return lines


def cli_markdown(group: click.Group = None) -> str:
    """Every command and subcommand of `mae-launch` (or of GROUP): usage, help and options."""
    if group is None:
        from launcher.cli import main as group
    with click.Context(group, info_name="mae-launch") as ctx:
        lines = [_text(group.help), ""] + _params_table(ctx, group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            with click.Context(command, info_name=name, parent=ctx) as sub_ctx:
                lines += _command_section(sub_ctx, command, f"mae-launch {name}", 2)
    return "\n".join(lines) + "\n"


def _resolve(schema: dict, defs: dict) -> dict:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[1]] if ref else schema


def _type(schema: dict, defs: dict) -> str:
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(_type(option, defs) for option in schema["anyOf"]))
    schema = _resolve(schema, defs)
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "mapping" if "properties" in schema else "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    return {"object": "mapping", "null": "null"}.get(kind, kind)


def _children(schema: dict, defs: dict):
    """(suffix, name of the definition, sub-schema) of each mapping with keys inside SCHEMA: itself,
    its list items, the values of a mapping whose keys you choose (`.NAME`), through every `anyOf`."""
    name = schema.get("$ref", "").rsplit("/", 1)[-1]
    schema = _resolve(schema, defs)
    for option in schema.get("anyOf", []):
        yield from _children(option, defs)
    if "properties" in schema:
        yield "", name, schema
    if schema.get("type") == "array":
        yield from ((f"[]{s}", n, c) for s, n, c in _children(schema.get("items", {}), defs))
    values = list(schema.get("patternProperties", {}).values())
    if isinstance(schema.get("additionalProperties"), dict):
        values.append(schema["additionalProperties"])
    for value in values:
        yield from ((f".NAME{s}", n, c) for s, n, c in _children(value, defs))


def _default_cell(key: str, prop: dict, schema: dict) -> str:
    if "default" in prop:
        value = prop["default"]
        return "" if isinstance(value, dict) and value else f"`{json.dumps(value)}`"
    return "required" if key in schema.get("required", []) else ""


def _key_rows(schema: dict, defs: dict, prefix: str, documented: dict) -> list:
    rows = []
    for key, prop in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        options = sorted(prop.get("anyOf", [prop]), key=lambda o: "$ref" not in o)  # a model's own words first
        described = prop.get("description") or next(
            (_resolve(o, defs)["description"] for o in options if "description" in _resolve(o, defs)), "")
        for suffix, name, child in _children(prop, defs):
            if name and name in documented:  # the same keys as another path: said once
                described = f"{described} `{path}{suffix}`: the same keys as `{documented[name]}`.".strip()
        rows.append(f"| `{path}` | {_type(prop, defs)} | {_default_cell(key, prop, schema)} | {_cell(described)} |")
        for suffix, name, child in _children(prop, defs):
            if name and name in documented:
                continue
            if name:
                documented[name] = f"{path}{suffix}"
            rows += _key_rows(child, defs, f"{path}{suffix}.", documented)
    return rows


def inventory_markdown() -> str:
    """Every key of an inventory (the schema `mae-launch inventory schema` prints): path, type,
    default and description."""
    from launcher.inventoryschema import inventory_schema
    schema = inventory_schema()
    rows = _key_rows(schema, schema.get("$defs", {}), "", {})
    head = ["| key | type | default | description |", "|---|---|---|---|"]
    return "\n".join(head + rows) + "\n"


def _comments(text: str) -> dict:
    """`key: value  # comment` lines of a YAML file: (section, key) -> comment."""
    found, section = {}, None
    for line in text.splitlines():
        top = re.match(r"^([A-Za-z_][\w-]*):", line)
        if top:
            section = top.group(1)
        inner = re.match(r"^\s+([\w-]+):[^#]*#\s*(.*)$", line)
        if inner:
            found[(section, inner.group(1))] = inner.group(2)
    return found


def configs_markdown(path: pathlib.Path = ROOT / "mae" / "configs.yml") -> str:
    """The defaults of every job flag (with their comments) and every named config of mae/configs.yml."""
    text = path.read_text()
    data, comments = yaml.safe_load(text), _comments(text)
    lines = []
    for section in ("defaults", "pretrain_defaults", "finetune_defaults"):
        lines += [f"## `{section}`", "", "| key | value | comment |", "|---|---|---|"]
        for key, value in (data.get(section) or {}).items():
            lines.append(f"| `{key}` | `{json.dumps(value)}` | {_cell(comments.get((section, key), ''))} |")
        lines.append("")
    lines += ["## Named configs", ""]
    for name, config in (data.get("configs") or {}).items():
        lines += [f"### `{name}`", "", "| key | value |", "|---|---|"]
        lines += [f"| `{key}` | `{json.dumps(value)}` |" for key, value in config.items()]
        lines.append("")
    return "\n".join(lines)


GENERATORS = {"cli": cli_markdown, "inventory-keys": inventory_markdown, "configs": configs_markdown}


def on_page_markdown(markdown, page, config, files):
    """mkdocs hook: replace each `<!-- generated: NAME -->` line by its generated text."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)
