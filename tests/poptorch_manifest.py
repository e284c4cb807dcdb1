"""Build tests/poptorch_manifest.json from PopTorch's Python sources (run by hand, not a test).

    git clone --branch sdk/poptorch/3.3.0 https://github.com/graphcore/poptorch
    python tests/poptorch_manifest.py poptorch [COMMIT] > tests/poptorch_manifest.json

Every public function, class, method and property of the modules ``poptorch`` re-exports (and the
option classes reached through ``Options``), with its parameters, return annotation, file and line;
enum members; the option values each options class starts with (read back as attributes, e.g.
``opts.replication_factor``). popdist's sources are not public: its entries are written below by
hand, as Graphcore's public examples call it. tests/test_ipu_conformance.py checks mae/ against the
result.
"""
from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

#: file -> the prefix its top-level names have in ``import poptorch``
FILES = {"options.py": "poptorch", "enums.py": "poptorch", "ops.py": "poptorch", "__init__.py": "poptorch",
         "_poplar_executor.py": "poptorch", "optim.py": "poptorch.optim"}

POPDIST = {
    "popdist.isPopdistEnvSet": {"kind": "function", "params": [], "returns": "bool"},
    "popdist.init": {"kind": "function", "params": [], "returns": None},
    "popdist.getInstanceIndex": {"kind": "function", "params": [], "returns": "int"},
    "popdist.getNumInstances": {"kind": "function", "params": [], "returns": "int"},
    "popdist.poptorch": {"kind": "module"},
    "popdist.poptorch.Options": {"kind": "class", "params": ["ipus_per_replica"], "returns": "poptorch.Options"},
}
POPDIST_SOURCE = ("not public; signatures as Graphcore's public examples call them: graphcore/examples "
                  "nlp/bert/pytorch/ipu_options.py (popdist.poptorch.Options(ipus_per_replica=...)), "
                  "vision/mae/pytorch/options.py, vision/mae/pytorch/main_pretrain.py")


def _params(fn: ast.FunctionDef) -> dict:
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return {"params": names + [p.arg for p in a.kwonlyargs], "positional": len(names),
            "varargs": a.vararg is not None, "varkw": a.kwarg is not None,
            "returns": _annotation(fn.returns)}


def _annotation(node) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(node)


def _decorators(fn) -> set[str]:
    return {ast.unparse(d) for d in fn.decorator_list}


def _option_values(cls: ast.ClassDef) -> list[str]:
    """Keyword names of ``super().__init__(...)`` in ``__init__``: the OptionsDict's values."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and ast.unparse(call.func) == "super().__init__":
                    return [k.arg for k in call.keywords if k.arg]
    return []


def _class(entries: dict, qual: str, cls: ast.ClassDef, path: str) -> None:
    bases = [ast.unparse(b) for b in cls.bases]
    entry = {"kind": "class", "path": path, "line": cls.lineno, "bases": bases, "params": [], "positional": 0,
             "varargs": False, "varkw": False, "returns": qual}
    if any(b.endswith("Enum") for b in bases):
        entry["own_init"] = True
        entry["kind"] = "enum"
        entry["members"] = [t.id for n in cls.body if isinstance(n, ast.Assign) for t in n.targets
                            if isinstance(t, ast.Name)]
    values = _option_values(cls)
    if values:
        entry["values"] = values
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if node.name == "__init__":
            entry.update({k: v for k, v in _params(node).items() if k != "returns"}, own_init=True)
        elif not node.name.startswith("_") or node.name in ("_Popart", "__call__"):
            kind = "property" if "property" in _decorators(node) else "method"
            if any(d.endswith(".setter") for d in _decorators(node)):
                continue
            entries[f"{qual}.{node.name}"] = {"kind": kind, "path": path, "line": node.lineno, **_params(node)}
    entries[qual] = entry


def build(root: pathlib.Path) -> dict:
    entries: dict = {}
    for name, prefix in FILES.items():
        path = f"python/{name}"
        tree = ast.parse((root / path).read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                private = node.name.startswith("_")
                qual = f"poptorch.{name[:-3]}.{node.name}" if private else f"{prefix}.{node.name}"
                _class(entries, qual, node, path)
            elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                entries[f"{prefix}.{node.name}"] = {"kind": "function", "path": path, "line": node.lineno,
                                                    **_params(node)}
    for qual, entry in entries.items():  # a class without its own __init__ takes its base's parameters
        if entry["kind"] == "class" and not entry.pop("own_init", False):
            prefix = qual.rsplit(".", 1)[0]
            for base in entry["bases"]:
                inherited = entries.get(f"{prefix}.{base}")
                if inherited:
                    entry.update({k: inherited[k] for k in ("params", "positional", "varargs", "varkw")})
                    break
    entries["poptorch.optim"] = {"kind": "module"}
    entries.update({k: {"positional": len(v.get("params", [])), "varargs": False, "varkw": False, **v,
                        "path": POPDIST_SOURCE} for k, v in POPDIST.items()})
    return entries


def main(argv: list[str]) -> int:
    root = pathlib.Path(argv[0])
    commit = argv[1] if len(argv) > 1 else subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=60).stdout.strip()
    manifest = {
        "about": "PopTorch names and signatures mae may use; built by tests/poptorch_manifest.py",
        "poptorch": {"repository": "graphcore/poptorch", "tag": "sdk/poptorch/3.3.0", "commit": commit or None,
                     "sdk": "Poplar SDK 3.3 (the README's 3.3/3.4: torch 2.0.1 wheels)",
                     "files": [f"python/{f}" for f in FILES]},
        "popdist": {"source": POPDIST_SOURCE},
        "names": dict(sorted(build(root).items())),
    }
    json.dump(manifest, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
