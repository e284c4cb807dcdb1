"""Layout rules of the mae package: short functions, no import cycle (lazy imports included), the
SDK only in mae/ipu*.py, and syntax that Python 3.8 (the Poplar SDK's on Ubuntu 20.04) parses."""
import ast
import pathlib

import pytest

MAE = pathlib.Path(__file__).resolve().parents[1] / "mae"
pytestmark = pytest.mark.sdk_compat


def _trees():
    return {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(MAE.glob("*.py"))}


def _mae_imports(tree) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mae":
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mae."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("mae."))
    return out


def test_no_function_over_60_lines():
    long = [f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, tree in _trees().items() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long


def test_no_import_cycle_in_mae():
    graph = {name: _mae_imports(tree) - {name} for name, tree in _trees().items()}
    state: dict[str, int] = {}

    def visit(node, path):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [node]))
        if state.get(node) == 2 or node not in graph:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = 2

    for name in graph:
        visit(name, [])


def test_the_sdk_is_imported_only_in_the_ipu_modules():
    for name, tree in _trees().items():
        sdk = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        sdk |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        if sdk & {"poptorch", "popdist", "mpi4py", "horovod"}:
            assert name.startswith("ipu"), name


def test_python_38_parses_every_module():
    for path in sorted(MAE.glob("*.py")):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))
        assert ".removeprefix(" not in path.read_text() and ".removesuffix(" not in path.read_text(), path.name
