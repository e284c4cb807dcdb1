"""Fuzzing the inventory loader: whatever the input, the only exception is InventoryError."""
import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from launcher.errors import InventoryError
from launcher.inventory import parse_inventory

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"digits_pretrain": {"job": "pretrain"}, "digits_finetune": {"job": "finetune"},
           "vit_base_pod64": {"job": "pretrain", "replica": 16, "ipus_per_replica": 4},
           "vit_base_pod16": {"job": "pretrain", "replica": 4, "ipus_per_replica": 4},
           "vit_base_finetune": {"job": "finetune", "replica": 4, "ipus_per_replica": 4},
           "vit_base_gpu": {"job": "pretrain"}}
BASES = [yaml.safe_load((ROOT / "inventories" / f"{n}.yml").read_text()) for n in ("local", "pod16", "pod64", "gpu-cluster")]
KEYS = sorted({"name", "launcher", "ssh", "hosts", "controller", "cluster", "partitions", "paths", "network", "env",
               "jobs", "pretrain", "finetune", "validate", "config", "partition", "replicas", "ipus_per_replica",
               "instances", "nproc_per_node", "args", "consumes", "ipus", "update", "remove", "reset", "value",
               "secret", "address", "port", "user", "workdir", "slots", "connection", "vipu_server_host",
               "allocation", "timeout", "interface", "venv", "sdk_enable", "data", "output", "host_key_policy"})
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 70000), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["poprun", "torchrun", "local", "ssh", "h[0-3]", "h[01-10]",
                                                           "h[3-1]", "pretrain", "finetune", "strict", "~/x", ""]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers()), inner, max_size=4)),
    max_leaves=20)


def _dump(doc) -> str:
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def _load(text: str):
    try:
        parse_inventory(text, "fuzz.yml", config_names=CONFIGS)
    except InventoryError as exc:
        assert exc.problems, str(exc)
        for problem in exc.problems:  # one sentence per problem, each naming the file
            assert problem.startswith("fuzz.yml") and "\n" not in problem, problem


@SETTINGS
@given(st.text(max_size=300))
def test_any_text(text):
    _load(text)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},'\"&*!|>%@`#?\n\t 01")), max_size=120))
def test_yaml_punctuation(text):
    _load(text)


@SETTINGS
@given(values)
@example({"\n": None})  # found by this test: a key that is a newline made a two-line message
@example({" ": None, "a\tb": None, "": None})
def test_any_document(doc):
    _load(_dump(doc))


@st.composite
def mutated_inventory(draw):
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node, key=str) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[key], (dict, list)):
                break
            node = node[key]
        if isinstance(node, dict) and node:
            key = draw(st.one_of(st.sampled_from(sorted(node, key=str)), st.sampled_from(KEYS)))
            node[key] = draw(values)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(values)
    return doc


@SETTINGS
@given(mutated_inventory())
def test_mutated_inventories(doc):
    _load(_dump(doc))


def test_alias_bomb_and_deep_nesting_are_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh"))
    for text in (bomb, "[" * 200 + "]" * 200, "a: &a [*a]\n"):
        try:
            parse_inventory(text, "fuzz.yml", config_names=CONFIGS)
        except InventoryError as exc:
            assert str(exc).startswith("fuzz.yml")
        else:
            raise AssertionError("accepted")
