"""The README's code as tests run it, so the README cannot drift from what works.

A section is found by its heading line (headings inside fenced blocks do not count: a shell
comment `# ...` is not a heading). In shell blocks, lines starting with `# ` right after a command
are the output the README promises for it, and a `json`/`text` block that directly follows a shell
block is the promised output of its last command; in Python blocks, the trailing `# ` lines are the
script's promised output. `...` in a promised line stands for any text, and the promised lines must
appear in the output in that order (other lines may come between them, such as HTTP headers).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "README",
    "Block",
    "Command",
    "CommandResult",
    "assert_promised_output",
    "promised_python_output",
    "readme_blocks",
    "readme_code_blocks",
    "run_commands",
    "shell_commands",
    "substitute",
]

README = Path(__file__).resolve().parents[1] / "README.md"

_FENCE = re.compile(r"^```(\w*)$")
_HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")
_OUTPUT_LANGUAGES = ("json", "text")
# Printed by the runner after each command, with its exit status: splits one bash run per command.
_DONE = "@@certbound-readme-command-done@@"


@dataclass(frozen=True)
class Block:
    """One fenced block of a section; `output` is the json/text block that directly follows it."""

    language: str
    text: str
    output: str | None = None


@dataclass
class Command:
    """One shell command as a user pastes it (continuation lines and heredoc included)."""

    text: str
    promised: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CommandResult:
    command: Command
    status: int
    output: str


def _section_lines(section: str) -> list[str]:
    lines = README.read_text(encoding="utf-8").splitlines()
    level = len(section) - len(section.lstrip("#"))
    in_fence = False
    start: int | None = None
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            heading_level = len(line) - len(line.lstrip("#"))
            if line == section:
                start = number
            elif start is not None and line[heading_level:].startswith(" ") and heading_level <= level:
                return lines[start:number]
    if start is None:
        raise LookupError(f"no README section {section!r}")
    return lines[start:]


def readme_blocks(section: str) -> list[Block]:
    """The fenced blocks of `section` (its subsections included), in order."""
    blocks: list[Block] = []
    lines = _section_lines(section)
    number = 0
    last_block_end = -2
    while number < len(lines):
        opening = _FENCE.match(lines[number])
        if opening is None:
            number += 1
            continue
        end = lines.index("```", number + 1)
        language, text = opening.group(1), "".join(line + "\n" for line in lines[number + 1 : end])
        follows = all(not line.strip() for line in lines[last_block_end + 1 : number])
        if language in _OUTPUT_LANGUAGES and follows and blocks and blocks[-1].output is None:
            blocks[-1] = Block(blocks[-1].language, blocks[-1].text, text)
        else:
            blocks.append(Block(language, text))
        last_block_end = end
        number = end + 1
    return blocks


def readme_code_blocks(section: str, language: str) -> list[str]:
    """The fenced `language` code blocks of the README section whose heading is `section`."""
    return [block.text for block in readme_blocks(section) if block.language == language]


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block, each with the output promised after it."""
    commands: list[Command] = []
    lines = block.text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if line.startswith("# ") and commands:
            commands[-1].promised.append(line[2:])
            continue
        if not line.strip():
            continue
        text = line
        while text.endswith("\\"):
            text += "\n" + lines[number]
            number += 1
        heredoc = _HEREDOC.search(text)
        if heredoc is not None:
            end = lines.index(heredoc.group(1), number)
            text += "".join("\n" + body for body in lines[number : end + 1])
            number = end + 1
        commands.append(Command(text))
    if block.output is not None and commands:
        commands[-1].promised.extend(block.output.splitlines())
    return commands


def promised_python_output(code: str) -> list[str]:
    """The trailing `# ` lines of a Python block: what the script prints."""
    promised: list[str] = []
    for line in reversed(code.rstrip("\n").splitlines()):
        if not line.startswith("# "):
            break
        promised.insert(0, line[2:])
    return promised


def substitute(text: str, replacements: Mapping[str, str]) -> str:
    """`text` with the README's fixed addresses replaced by a test's (ports picked by the kernel)."""
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def run_commands(
    commands: Sequence[Command], *, cwd: Path, replacements: Mapping[str, str], timeout: float = 120
) -> tuple[list[CommandResult], str]:
    """Run `commands` in one bash, as pasted into one terminal (variables carry over): each one's
    exit status and standard output, and the standard error of them all."""
    done = f"printf '\\n{_DONE} %s\\n' \"$?\"\n"
    script = "set -o pipefail\n" + "".join(
        f"{substitute(command.text, replacements)}\n{done}" for command in commands
    )
    finished = subprocess.run(
        ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    parts = re.split(rf"\n{_DONE} (\d+)\n", finished.stdout)
    outputs, statuses = parts[0:-1:2], [int(status) for status in parts[1::2]]
    if len(statuses) != len(commands):
        raise AssertionError(f"bash stopped early ({finished.returncode}): {finished.stderr}")
    results = [
        CommandResult(command, status, output)
        for command, status, output in zip(commands, statuses, outputs, strict=True)
    ]
    return results, finished.stderr


def _promise_pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.split("...")))


def assert_promised_output(promised: Sequence[str], output: str, what: str) -> None:
    """Each promised line matches an output line, in order (`...` matches anything)."""
    lines = [line.rstrip("\r") for line in output.splitlines()]
    position = 0
    for expected in promised:
        pattern = _promise_pattern(expected)
        while position < len(lines) and not pattern.fullmatch(lines[position]):
            position += 1
        assert position < len(lines), f"{what}: the README promises {expected!r}; the output was:\n{output}"
        position += 1
