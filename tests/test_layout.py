"""The two packages meet only at the command line: neither imports the other."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def imported_top_modules(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_launcher_never_imports_mae():
    assert "mae" not in imported_top_modules("launcher")


def test_mae_never_imports_launcher():
    assert "launcher" not in imported_top_modules("mae")


def test_remap_fallback_restores_order():
    import torch
    import remap

    n, length, d = 2, 6, 3
    x = torch.randn(n, length, d)
    noise = torch.rand(n, length)
    ids_shuffle = noise.argsort(1)
    ids_restore = ids_shuffle.argsort(1)
    kept = remap.keep(x, ids_shuffle[:, :length])
    cls = torch.zeros(n, 1, d)
    out = remap.restore(torch.cat([cls, kept], 1), ids_restore, torch.ones(d))
    assert torch.equal(out[:, 1:], x)
