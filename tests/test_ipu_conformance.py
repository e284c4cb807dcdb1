"""mae's PopTorch use against PopTorch's own sources (tests/poptorch_manifest.json: graphcore/poptorch
tag sdk/poptorch/3.3.0, built by tests/poptorch_manifest.py; popdist as Graphcore's examples call it).

A walk of mae/ with ``ast`` resolves every ``poptorch.*`` / ``popdist.*`` name and every method called
on an object PopTorch returns (``Options`` and its sub-options, executors, optimizers, loaders), and
fails on a name, or a keyword argument, that PopTorch 3.3 does not have. Receivers are typed from
assignments (``x = poptorch.Options()``, ``x = ipu.make_options(...)``) and, where mae passes them
around, from the names used for them throughout mae (``RECEIVERS``). The SDK-free stand-in is held to
the same signatures.
"""
from __future__ import annotations

import ast
import inspect
import json
import pathlib

import pytest
import torch

pytestmark = pytest.mark.sdk_compat

ROOT = pathlib.Path(__file__).resolve().parents[1]
MANIFEST = json.loads((ROOT / "tests" / "poptorch_manifest.json").read_text())
NAMES = MANIFEST["names"]

MODULES = {"poptorch": ("mod", "poptorch"), "popdist": ("mod", "popdist")}
#: what mae calls the PopTorch objects it passes between functions
RECEIVERS = {"opts": "poptorch.Options", "training": "poptorch.PoplarExecutor",
             "inference": "poptorch.PoplarExecutor", "popt": "poptorch.optim.AdamW"}
#: mae functions that return PopTorch objects
RETURNS = {"make_options": "poptorch.Options", "wrap_for_training": "poptorch.PoplarExecutor",
           "wrap_classifier": "poptorch.PoplarExecutor", "wrap_inference": "poptorch.PoplarExecutor",
           "to_poptorch_optimizer": "poptorch.optim.AdamW", "data_loader": "poptorch.DataLoader"}
TORCH_BASES = {"torch.optim.AdamW": lambda: torch.optim.AdamW([torch.zeros(1, requires_grad=True)]),
               "torch.optim.SGD": lambda: torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
               "torch.utils.data.DataLoader": lambda: torch.utils.data.DataLoader([0])}


class Checker:
    def __init__(self):
        self.problems: list[str] = []
        self.used: set[str] = set()

    # -- types: ("mod", name) | ("ref", manifest key) | ("inst", manifest key) | None (not PopTorch's)
    def _lookup(self, key: str, where: str):
        if key not in NAMES:
            self.problems.append(f"{where}: `{key}` is not in PopTorch 3.3")
            return None
        self.used.add(key)
        entry = NAMES[key]
        if entry["kind"] == "module":
            return ("mod", key)
        if entry["kind"] == "property":
            return self._instance(entry.get("returns"))
        return ("ref", key)

    @staticmethod
    def _instance(returns):
        return ("inst", returns) if returns in NAMES else None

    def _member(self, cls: str, attr: str, where: str):
        owner = self._owner(cls, attr)
        if owner is None:
            self.problems.append(f"{where}: `{cls}` has no `{attr}` in PopTorch 3.3")
            return None
        return self._lookup(f"{owner}.{attr}", where) if owner in NAMES else None

    def _owner(self, cls: str, attr: str):
        """The class (cls, a PopTorch base, or a torch base) that has ``attr``; None when none has."""
        entry = NAMES[cls]
        if f"{cls}.{attr}" in NAMES:
            return cls
        if attr in entry.get("values", []):
            return "values"
        for base in entry.get("bases", []):
            for name in (cls.rsplit(".", 1)[0] + "." + base, base):
                if name in NAMES and name != cls and self._owner(name, attr):
                    return self._owner(name, attr)
            if base in TORCH_BASES and hasattr(TORCH_BASES[base](), attr):
                return base
        return None

    def resolve(self, node, env: dict, where: str):
        if isinstance(node, ast.Name):
            return env.get(node.id) or MODULES.get(node.id) or (("inst", RECEIVERS[node.id])
                                                                 if node.id in RECEIVERS else None)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in RECEIVERS:
                return ("inst", RECEIVERS[node.attr])
            base = self.resolve(node.value, env, where)
            if base is None:
                return None
            kind, key = base
            if kind == "mod":
                return self._lookup(f"{key}.{node.attr}", where)
            if kind == "ref" and NAMES[key]["kind"] == "enum":
                if node.attr not in NAMES[key]["members"]:
                    self.problems.append(f"{where}: `{key}` has no member `{node.attr}` in PopTorch 3.3")
                return None
            if kind == "inst":
                return self._member(key, node.attr, where)
            return None
        if isinstance(node, ast.Call):
            return self.call(node, env, where)
        return None

    def call(self, node: ast.Call, env: dict, where: str):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in RETURNS:
            return ("inst", RETURNS[name])
        f = self.resolve(node.func, env, where)
        if f is None:
            return None
        kind, key = f
        if kind == "inst":  # calling an executor
            key = f"{key}.__call__"
            if key not in NAMES:
                self.problems.append(f"{where}: `{f[1]}` objects are not callable in PopTorch 3.3")
                return None
        if kind == "mod":
            return None
        entry = NAMES[key]
        self._check_args(key, entry, node, where)
        if entry["kind"] in ("class", "enum"):
            return ("inst", entry.get("returns") if entry.get("returns") in NAMES else key)
        return self._instance(entry.get("returns"))

    def _check_args(self, key: str, entry: dict, node: ast.Call, where: str) -> None:
        starred = any(isinstance(a, ast.Starred) for a in node.args)
        if not starred and len(node.args) > entry["positional"] and not entry["varargs"]:
            self.problems.append(f"{where}: `{key}` takes {entry['positional']} positional arguments, "
                                 f"given {len(node.args)}")
        extra = sorted({k.arg for k in node.keywords if k.arg} - set(entry["params"]))  # not **spread
        if extra and entry["varkw"] and key == "poptorch.DataLoader":  # **kwargs go to torch's DataLoader
            extra = [k for k in extra if k not in inspect.signature(torch.utils.data.DataLoader).parameters]
        elif entry["varkw"]:
            extra = []
        if extra:
            self.problems.append(f"{where}: `{key}` has no keyword {', '.join(extra)} in PopTorch 3.3")

    def check_function(self, fn, path: str, env: dict) -> None:
        env = dict(env)
        for node in _ordered(fn):
            where = f"{path}:{getattr(node, 'lineno', fn.lineno)}"
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                t = self.resolve(node.value, env, where)
                if t is not None and t[0] != "mod":
                    env[node.targets[0].id] = t
            elif isinstance(node, (ast.Call, ast.Attribute)):
                self.resolve(node, env, where)


def _ordered(fn):
    """Assignments, calls and attributes of ``fn`` in source order (nested ones and nested defs too)."""
    out = []

    class V(ast.NodeVisitor):
        def generic_visit(self, node):
            if isinstance(node, (ast.Assign, ast.Call, ast.Attribute)):
                out.append(node)
            super().generic_visit(node)
    for stmt in fn.body:
        V().visit(stmt)
    return out


def check_source(text: str, path: str = "<source>") -> Checker:
    checker = Checker()
    tree = ast.parse(text)
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            checker.check_function(fn, path, {})
    checker.problems = list(dict.fromkeys(checker.problems))
    return checker


def _mae_sources():
    return sorted((ROOT / "mae").glob("*.py"))


def test_manifest_names_its_sources():
    src = MANIFEST["poptorch"]
    assert src["repository"] == "graphcore/poptorch" and src["tag"] == "sdk/poptorch/3.3.0" and src["commit"]
    assert "popdist.poptorch.Options" in NAMES and "graphcore/examples" in MANIFEST["popdist"]["source"]


def test_mae_uses_only_poptorch_names_and_keywords_the_sdk_has():
    problems, used = [], set()
    for path in _mae_sources():
        checker = check_source(path.read_text(), str(path.relative_to(ROOT)))
        problems += checker.problems
        used |= checker.used
    assert not problems, "\n".join(problems)
    # the walk reached the calls that matter (a checker that sees nothing passes everything)
    for key in ("poptorch.Options.deviceIterations", "poptorch.options._TrainingOptions.gradientAccumulation",
                "poptorch.trainingModel", "poptorch.inferenceModel", "poptorch.DataLoader", "poptorch.BeginBlock",
                "poptorch.optim.AdamW", "poptorch.PoplarExecutor.setOptimizer", "poptorch.ShardedExecution",
                "poptorch.TensorLocationSettings.useReplicatedTensorSharding", "popdist.poptorch.Options",
                "poptorch.PoplarExecutor.copyWeightsToHost", "poptorch.identity_loss", "popdist.getNumInstances"):
        assert key in used, key


@pytest.mark.parametrize("old, new, complaint", [
    ("opts.deviceIterations(", "opts.deviceIteration(", "`poptorch.Options` has no `deviceIteration`"),
    ("loss_scaling=float(", "loss_scale=float(", "`poptorch.optim.AdamW` has no keyword loss_scale"),
    ("poptorch.ShardedExecution()", "poptorch.ShardExecution()", "`poptorch.ShardExecution` is not in"),
    ("auto_distributed_partitioning=auto_distributed_partitioning, mode=mode",
     "auto_distributed_partitioning=auto_distributed_partitioning, loader_mode=mode",
     "`poptorch.DataLoader` has no keyword loader_mode"),
    ("poptorch.OutputMode.All", "poptorch.OutputMode.Every", "`poptorch.OutputMode` has no member `Every`"),
    ("f\"stage{k}\", ipu_id=ipu)", "f\"stage{k}\", ipu=ipu)", "`poptorch.BeginBlock` has no keyword ipu"),
    ("self.training.copyWeightsToHost()", "self.training.copyWeightToHost()",
     "`poptorch.PoplarExecutor` has no `copyWeightToHost`"),
])
def test_a_misspelt_call_or_a_foreign_keyword_fails(old, new, complaint):
    for path in _mae_sources():
        text = path.read_text()
        if old in text:
            assert not check_source(text).problems
            problems = check_source(text.replace(old, new, 1)).problems
            assert any(complaint in p for p in problems), problems
            return
    raise AssertionError(f"{old!r} is no longer in mae/: update this mutation")


def test_the_standin_has_the_manifest_signatures():
    """Every PopTorch callable mae uses exists in the stand-in with PopTorch's parameter names."""
    from standins import poptorch_standin
    from standins.poptorch_standin import _executor, options

    used = set()
    for path in _mae_sources():
        used |= check_source(path.read_text()).used
    places = {"poptorch": poptorch_standin, "poptorch.optim": poptorch_standin.optim,
              "poptorch.options": options, "poptorch.PoplarExecutor": _executor.PoplarExecutor}
    for key in sorted(k for k in used if k.startswith("poptorch") and NAMES[k]["kind"] != "module"):
        owner, _, attr = key.rpartition(".")
        holder = places.get(owner)
        if holder is None:
            holder = getattr(places.get(owner.rpartition(".")[0]), owner.rpartition(".")[2])
        entry = NAMES[key]
        obj = getattr(holder, attr, None)
        if obj is None and entry["kind"] == "property":
            obj = getattr(holder(), attr)  # an option group: an attribute of each Options object
        assert obj is not None, f"the stand-in lacks {key}"
        if entry["kind"] in ("function", "method", "class") and callable(obj):
            target = obj.__init__ if inspect.isclass(obj) else obj
            params = [p for p in inspect.signature(target).parameters if p not in ("self", "args", "kwargs")]
            assert params == entry["params"], f"{key}: stand-in {params} != PopTorch {entry['params']}"


def test_the_product_never_names_the_standin():
    for path in [*_mae_sources(), *sorted((ROOT / "launcher").rglob("*.py"))]:
        assert "standin" not in path.read_text().lower(), path
