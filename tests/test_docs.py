"""The documentation site: its generated reference pages follow the code, every page is in the nav, and
the README stays a short front page that links to each page.

The generated pages are built by docs/hooks.py (an mkdocs hook) at every `make docs`; these tests call
the same functions, so they need no mkdocs. `make docs` itself (strict: a broken link or anchor fails)
runs in CI (.ci/run)."""
import importlib.util
import pathlib
import re

import click
import pytest
import yaml

from launcher.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def _option(command: click.Command, name: str) -> click.Option:
    return next(p for p in command.params if isinstance(p, click.Option) and name in p.opts)


def test_the_cli_page_has_every_command_and_subcommand():
    page = hooks.cli_markdown()
    for name in main.list_commands(None):
        assert f"## `mae-launch {name}`" in page, name
    for name in main.get_command(None, "inventory").list_commands(None):
        assert f"### `mae-launch inventory {name}`" in page, name
    assert "| `-i, --inventory PATH` |" in page and "| `--min-free-gb FLOAT` | Free disk the workdir needs. | `2.0` |" in page


def test_the_cli_page_changes_with_an_options_help(monkeypatch):
    option = _option(main.get_command(None, "check"), "--min-free-gb")
    assert "Free disk the workdir needs." in hooks.cli_markdown()
    monkeypatch.setattr(option, "help", "Gigabytes of free disk each workdir must have.")
    page = hooks.cli_markdown()
    assert "Gigabytes of free disk each workdir must have." in page
    assert "Free disk the workdir needs." not in page


def test_the_cli_page_escapes_what_markdown_would_eat():
    @click.group()
    def group():
        """A group."""

    @group.command()
    @click.option("--out", default="<run>/x", help="Writes <dir>/*_x | y.")
    def sub(out):
        """Runs `sub`."""

    page = hooks.cli_markdown(group)
    assert "| `--out TEXT` | Writes &lt;dir&gt;/\\*\\_x \\| y. | `<run>/x` |" in page
    assert "## `mae-launch sub`" in page and "Runs `sub`." in page


def test_the_inventory_keys_page_follows_the_schema():
    page = hooks.inventory_markdown()
    for row in ("| `network.master_port` | integer | `29500` |", "| `hosts[].address` | string or null | `null` |",
                "| `jobs.pretrain.config` | string | required |", "| `partitions.NAME.ipus` | integer | required |",
                "| `name` | string | required |"):
        assert row in page, row
    assert "SSH settings" in page  # a description of the schema
    assert "| `cluster` | mapping or null | `null` | The V-IPU server" in page  # an optional section's own
    assert "`jobs.finetune`: the same keys as `jobs.pretrain`" in page


def test_the_configs_page_follows_mae_configs(tmp_path):
    page = hooks.configs_markdown()
    configs = yaml.safe_load((ROOT / "mae" / "configs.yml").read_text())
    for name in configs["configs"]:
        assert f"### `{name}`" in page, name
    assert "| `batch_size` | `64` | micro-batch per process (per replica on IPU) |" in page
    changed = tmp_path / "configs.yml"
    changed.write_text("defaults:\n  epochs: 7   # how many\nconfigs:\n  tiny:\n    job: pretrain\n")
    assert "| `epochs` | `7` | how many |" in hooks.configs_markdown(changed)


def test_the_hook_replaces_each_marker():
    text = "# CLI\n\n<!-- generated: cli -->\n\nafter\n"
    out = hooks.on_page_markdown(text, None, None, None)
    assert "<!-- generated" not in out and "## `mae-launch check`" in out and out.endswith("after\n")


def _nav_pages(nav) -> list:
    pages = []
    for item in nav:
        for value in item.values():
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav_and_linked_from_the_readme():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(_nav_pages(config["nav"])) == pages
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)", readme))
    assert set(pages) <= linked, sorted(set(pages) - linked)
    assert config["theme"]["font"] is False and config["strict"] is True


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("marker", sorted(hooks.GENERATORS))
def test_each_generated_page_has_its_marker(marker):
    assert any(f"<!-- generated: {marker} -->" in p.read_text() for p in DOCS.rglob("*.md")), marker


@pytest.mark.parametrize("page", sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")))
def test_list_content_is_indented_for_the_site(page):
    """The site's Markdown (Python-Markdown) needs a list item's blocks indented 4 columns; a fence at
    1-3 columns (GitHub's habit) ends the list there, and numbered steps restart at 1."""
    text = (DOCS / page).read_text()
    assert not re.search(r"^ {1,3}```", text, re.M), f"docs/{page}: indent list content (fences too) by 4 spaces"
