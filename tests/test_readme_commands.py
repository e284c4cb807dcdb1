"""Every `mae-launch ...` line in the shell blocks of the README and of every page of the documentation
site (docs/**/*.md) is true of the CLI: `render` lines run for real (nothing is contacted), every other
line is parsed by its command (options and arguments checked, nothing run), and its `--help` works."""
import pathlib
import re
import shlex

import pytest
from click.testing import CliRunner

from launcher.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_commands(page: pathlib.Path) -> list[str]:
    text = page.read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("mae-launch"):
                lines.append(line)
    return lines


def readme_commands() -> list[tuple[str, str]]:
    """(page, line) of every mae-launch command line of the README and the documentation pages."""
    return [(page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in page_commands(page)]


def _argv(line: str) -> list[str]:
    return shlex.split(line, comments=True)[1:]


def test_the_readme_shows_the_walk_through_commands():
    cmds = {_argv(line)[0] for line in page_commands(ROOT / "README.md") if _argv(line)}
    assert {"check", "setup", "deploy", "pretrain", "logs", "status", "fetch", "finetune", "stop",
            "tensorboard"} <= cmds


def test_the_pages_show_every_command():
    cmds = {_argv(line)[0] for _page, line in readme_commands() if _argv(line)}
    assert {"check", "setup", "deploy", "pretrain", "logs", "status", "fetch", "finetune", "stop", "exec",
            "tensorboard", "clean", "runs", "render", "pipeline"} <= cmds


def test_every_page_is_read():
    pages = {page for page, _line in readme_commands()}
    assert {"README.md", "docs/getting-started.md", "docs/reference/commands.md", "docs/guides/slurm.md",
            "docs/guides/ipu-pod.md"} <= pages, pages


@pytest.mark.parametrize("page,line", readme_commands())
def test_readme_command_line(page, line):
    argv = _argv(line)
    if argv == ["--help"]:
        assert CliRunner().invoke(main, argv).exit_code == 0
        return
    name, args = argv[0], argv[1:]
    assert name in main.list_commands(None), f"{page} shows an unknown command: {line}"
    command = main.get_command(None, name)
    if name == "render":
        res = CliRunner().invoke(main, argv, env={"MAE_LAUNCH_INVENTORY": None})
        assert res.exit_code == 0, f"{page}: {line}\n{res.output}"
        return
    if hasattr(command, "get_command") and args and not args[0].startswith("-"):  # a group: its subcommand
        name, command, args = f"{name} {args[0]}", command.get_command(None, args[0]), args[1:]
        assert command is not None, f"{page} shows an unknown subcommand: {line}"
    ctx = command.make_context(name, list(args))  # raises on an unknown option or a bad value
    ctx.close()
    assert CliRunner().invoke(main, [*name.split(), "--help"]).exit_code == 0
