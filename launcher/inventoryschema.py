"""The JSON Schema of an inventory, for editors (`mae-launch inventory schema`).

It is pydantic's schema of `InventorySpec` (launcher/schema.py), with the shorthands the loader
accepts before validation written in: a host given by its name alone, a partition by its IPU count,
an environment variable by its value, `setup:` by its list of commands, numbers and booleans where
text is meant (`args`, `time`).
inventories/inventory.schema.json is this text, checked to be current by tests/test_inventory_schema.py.
"""
import json

from launcher.schema import InventorySpec

SCALAR = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]


def _either(schema: dict, *shorthands) -> dict:
    return {"anyOf": [*shorthands, schema]}


def _nullable_items(prop: dict) -> dict:
    """The array schema inside `anyOf: [array, null]` (an Optional list) or the property itself."""
    for option in prop.get("anyOf", [prop]):
        if option.get("type") == "array":
            return option
    return prop


def _map_values(prop: dict, *shorthands) -> None:
    """A mapping whose keys follow a pattern: each value may also be a shorthand; other keys are errors."""
    prop["patternProperties"] = {k: _either(v, *shorthands) for k, v in prop["patternProperties"].items()}
    prop["additionalProperties"] = False


def inventory_schema() -> dict:
    schema = InventorySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mae-launch inventory"
    defs, props = schema["$defs"], schema["properties"]
    hosts = _nullable_items(props["hosts"])
    name = dict(defs["HostSpec"]["properties"]["name"], description="a host (or name range) by name")
    hosts["items"] = _either(hosts["items"], name)
    _map_values(props["partitions"], {"type": "integer", "minimum": 1, "description": "IPUs"})
    for owner in (props, defs["JobSpec"]["properties"]):
        _map_values(owner["env"], *SCALAR)
    for key in ("args", "launcher_args"):
        defs["JobSpec"]["properties"][key]["items"] = {"anyOf": SCALAR}
    commands = defs["SetupSpec"]["properties"]["commands"]
    props["setup"] = _either(props["setup"], dict(commands, description="the setup commands alone"))
    time = defs["SlurmSpec"]["properties"]["time"]
    time["anyOf"] = [{"type": "integer", "minimum": 0, "description": "minutes"}, *time["anyOf"]]
    return schema


def schema_text() -> str:
    return json.dumps(inventory_schema(), indent=2) + "\n"
