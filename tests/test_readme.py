"""The README and docs/ cannot drift from the command line: every command they show answers `--help`, and every
flag it uses is one that `--help` lists.

Commands are read from the fenced code blocks: lines that run `pipeline_runner.py`, `deepfake-pipeline`,
`python -m serving.<module>`, `python -m deepfake_detection.<module>` or `python bench/<bench>.py`.
"""

import glob
import os
import re
import shlex
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
README_MAX_LINES = 250
CONSOLE_SCRIPT = ("deepfake-pipeline", "pipeline_runner")  # setup.py's console script and the module it runs
SUBCOMMAND = re.compile(r"[a-z][a-z_-]*")
PACKAGES = ("serving", "deepfake_detection")


def code_block_lines(text: str) -> List[str]:
    """The lines of the fenced code blocks, continuations joined and comments dropped."""
    lines, inside, pending = [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        lines.append(line)
    return lines


def parse_command(line: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(the program and its subcommands as run here, the flags the line uses); ((), ()) when it runs none of ours."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return (), ()
    tokens = [t for t in tokens if not re.fullmatch(r"[A-Z_]+=.*", t)]  # environment assignments
    if not tokens:
        return (), ()
    name, after = os.path.basename(tokens[0]), tokens[1:]
    if name.startswith("python") and after[:1] == ["pipeline_runner.py"]:
        name, after = "pipeline_runner.py", after[1:]
    if name == CONSOLE_SCRIPT[0]:
        program, rest = ("-m", CONSOLE_SCRIPT[1]), after
    elif name == "pipeline_runner.py":
        program, rest = ("pipeline_runner.py",), after
    elif name.startswith("python") and after[:1] == ["-m"] and after[1].split(".")[0] in PACKAGES:
        program, rest = ("-m", after[1]), after[2:]
    elif name.startswith("python") and after and after[0].startswith("bench/"):
        program, rest = (after[0],), after[1:]
    else:
        return (), ()
    subcommands = []
    for token in rest:
        if not SUBCOMMAND.fullmatch(token):
            break
        subcommands.append(token)
    flags = tuple(sorted({t.split("=")[0] for t in rest if t.startswith("--")}))
    return (*program, *subcommands), flags


def documented_commands() -> Dict[Tuple[str, ...], Dict[str, List[str]]]:
    """{command: {flag: [the documents using it]}} over the README and docs/."""
    commands: Dict[Tuple[str, ...], Dict[str, List[str]]] = {}
    for path in DOCUMENTS:
        with open(path) as f:
            for line in code_block_lines(f.read()):
                command, flags = parse_command(line)
                if command:
                    seen = commands.setdefault(command, {})
                    for flag in flags:
                        seen.setdefault(flag, []).append(os.path.relpath(path, ROOT))
    return commands


def help_text(command: Tuple[str, ...]) -> str:
    """What `command --help` prints; fails the test when it does not exit 0."""
    result = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, f"{' '.join(command)} --help failed:\n{result.stderr[-3000:]}"
    return result.stdout


COMMANDS = documented_commands()


def test_the_readme_is_short_and_shows_the_main_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    assert len(text.splitlines()) <= README_MAX_LINES
    for command in (
        ("-m", "pipeline_runner", "serve"),
        ("-m", "pipeline_runner", "service"),
        ("-m", "pipeline_runner", "detect"),
    ):
        assert command in documented_commands_of(text), f"the README shows no {' '.join(command)} command"


def documented_commands_of(text: str) -> List[Tuple[str, ...]]:
    return [command for command, _ in map(parse_command, code_block_lines(text)) if command]


def test_the_console_script_runs_the_module_the_readme_test_calls():
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert f'"{CONSOLE_SCRIPT[0]}={CONSOLE_SCRIPT[1]}:main"' in f.read()


def test_commands_are_found_with_their_subcommands_and_flags():
    line = ".venv/bin/python pipeline_runner.py local --data-root DIR --backbones a,b --weights=imagenet  # a comment"
    assert parse_command(line) == (("pipeline_runner.py", "local"), ("--backbones", "--data-root", "--weights"))
    assert parse_command(".venv/bin/deepfake-pipeline detect --local $clip")[0] == (
        "-m",
        "pipeline_runner",
        "detect",
    )
    assert parse_command("curl -F files=@x http://127.0.0.1:8080/v1/detect") == ((), ())
    assert code_block_lines("```sh\na \\\n  b  # c\n```\nnot code\n") == ["a b  # c"]


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_every_documented_command_answers_help_and_knows_its_flags(command):
    text = help_text(command)
    unknown = {flag: where for flag, where in COMMANDS[command].items() if not re.search(rf"{flag}(?![\w-])", text)}
    assert not unknown, f"{' '.join(command)} has no such flags (documented in {unknown})"
