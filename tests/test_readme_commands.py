"""Every `mae-launch ...` line in the README's shell blocks is true of the CLI: `render` lines run for real
(nothing is contacted), every other line is parsed by its command (options and arguments checked, nothing
run), and its `--help` works."""
import pathlib
import re
import shlex

import pytest
from click.testing import CliRunner

from launcher.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("mae-launch"):
                lines.append(line)
    return lines


def _argv(line: str) -> list[str]:
    return shlex.split(line, comments=True)[1:]


def test_the_readme_shows_the_walk_through_commands():
    cmds = {_argv(line)[0] for line in readme_commands() if _argv(line)}
    assert {"check", "setup", "deploy", "pretrain", "logs", "status", "fetch", "finetune", "stop", "exec",
            "tensorboard", "clean", "runs", "render", "pipeline"} <= cmds


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_line(line):
    argv = _argv(line)
    if argv == ["--help"]:
        assert CliRunner().invoke(main, argv).exit_code == 0
        return
    name, args = argv[0], argv[1:]
    assert name in main.list_commands(None), f"README shows an unknown command: {line}"
    command = main.get_command(None, name)
    if name == "render":
        res = CliRunner().invoke(main, argv, env={"MAE_LAUNCH_INVENTORY": None})
        assert res.exit_code == 0, f"{line}\n{res.output}"
        return
    if hasattr(command, "get_command") and args and not args[0].startswith("-"):  # a group: its subcommand
        name, command, args = f"{name} {args[0]}", command.get_command(None, args[0]), args[1:]
        assert command is not None, f"README shows an unknown subcommand: {line}"
    ctx = command.make_context(name, list(args))  # raises on an unknown option or a bad value
    ctx.close()
    assert CliRunner().invoke(main, [*name.split(), "--help"]).exit_code == 0
