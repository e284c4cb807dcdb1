"""The inventory's JSON Schema for editors: inventories/inventory.schema.json is current, every
example inventory names it and is valid against it (as a YAML language server would check), and
mistakes the loader refuses are flagged by the schema too."""
import json
import pathlib

import jsonschema
import pytest
import yaml

from launcher.inventoryschema import schema_text

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "inventories" / "inventory.schema.json"
EXAMPLES = sorted((ROOT / "inventories").glob("*.yml"))
SCHEMA_LINE = "# yaml-language-server: $schema=./inventory.schema.json"


def test_schema_file_is_current():
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "inventories/inventory.schema.json is not what `mae-launch inventory schema` prints now; regenerate it "
        "with `make schema` (mae-launch inventory schema > inventories/inventory.schema.json) and commit it")


def _validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_name_the_schema_and_are_valid(path):
    text = path.read_text()
    assert text.splitlines()[0] == SCHEMA_LINE, f"{path.name} must start with: {SCHEMA_LINE}"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(yaml.safe_load(text))]
    assert errors == []


@pytest.mark.parametrize("change, where", [
    (lambda d: d["ssh"].update(conect_timeout=10), ["ssh"]),                      # a typo in a key
    (lambda d: d.update(launcher="mpirun"), ["launcher"]),
    (lambda d: d["env"].update({"BAD-NAME": 1}), ["env"]),
    (lambda d: d["jobs"]["pretrain"].update(nproc_per_node=0), ["jobs", "pretrain"]),
    (lambda d: d["hosts"].append("a;rm -rf /"), ["hosts"]),
    (lambda d: d["jobs"].update(fintune={"config": "x"}), ["jobs"]),
])
def test_schema_flags_mistakes(change, where):
    data = yaml.safe_load((ROOT / "inventories" / "gpu-cluster.yml").read_text())
    validator = _validator()
    assert list(validator.iter_errors(data)) == []
    change(data)
    errors = list(validator.iter_errors(data))
    assert errors and any(list(e.absolute_path)[:len(where)] == where for e in errors), [e.message for e in errors]


@pytest.mark.parametrize("setup", [["sudo apt-get install -y rsync"], {"commands": ["true"], "extras": ["wandb"]}])
def test_both_forms_of_setup_are_valid(setup):
    """`setup:` as the README writes it (a list of commands) or as a mapping with extras: the loader
    takes both, so the schema does."""
    from launcher.inventory import parse_inventory
    data = yaml.safe_load((ROOT / "inventories" / "gpu-cluster.yml").read_text())
    data["setup"] = setup
    assert list(_validator().iter_errors(data)) == []
    parse_inventory(yaml.safe_dump(data), ROOT / "inventories" / "gpu-cluster.yml")


def test_every_key_is_described():
    """Each key's description (a field docstring in launcher/schema.py) is what editors show and the
    docs' generated key list prints: none may be missing."""
    schema = json.loads(SCHEMA_FILE.read_text())
    missing = []
    for owner, props in [("", schema["properties"])] + [(f"{n}.", d.get("properties", {}))
                                                      for n, d in schema["$defs"].items()]:
        for key, prop in props.items():
            refs = [o.get("$ref") for o in prop.get("anyOf", [prop]) if o.get("$ref")]
            described = prop.get("description") or any(
                schema["$defs"][r.rsplit("/", 1)[-1]].get("description") for r in refs)
            if not described:
                missing.append(owner + key)
    assert missing == [], f"keys without a docstring in launcher/schema.py: {missing}"
