"""The command reference of ``docs/cli.md``, written from the parser itself.

``python -m neural_kmeans.app.cli_reference docs/cli.md`` rewrites the part of the page
between its two markers; a test checks that the page holds exactly what the parser
says, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neural_kmeans.app.cli import COMMANDS, build_parser

BEGIN = "<!-- reference: written by python -m neural_kmeans.app.cli_reference -->"
END = "<!-- end of reference -->"


def _value(action: argparse.Action) -> str:
    if action.choices is not None:
        return "{" + ", ".join(str(c) for c in action.choices) + "}"
    if action.nargs == 0:
        return ""
    return action.metavar or action.dest.upper()


def _default(action: argparse.Action) -> str:
    default = action.default
    if action.required:
        return "required"
    if default is None or default is False or default == argparse.SUPPRESS:
        return ""
    if isinstance(default, list):
        return " ".join(str(v) for v in default)
    return str(default)


def reference(parser: argparse.ArgumentParser | None = None) -> str:
    """Every command with its options: flag, value, default and help, as Markdown."""
    parser = parser or build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = []
    for name, command in COMMANDS.items():
        sub = subparsers.choices[name]
        summary = command.summary[0].upper() + command.summary[1:]
        lines += [f"### `neural-kmeans {name}`", "", f"{summary}.", ""]
        lines += ["| option | value | default | what it does |", "|---|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = ", ".join(action.option_strings)
            value = _value(action).replace("|", "\\|")
            help_text = " ".join((action.help or "").split()).replace("|", "\\|")
            lines.append(f"| `{flag}` | {value} | {_default(action)} | {help_text} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def rewrite(path: str | Path) -> bool:
    """Put the reference between the markers of ``path``; True when the page changed."""
    path = Path(path)
    text = path.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n\n" + reference() + "\n" + text[stop:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = rewrite(sys.argv[1] if len(sys.argv) > 1 else "docs/cli.md")
    print("rewritten" if changed else "up to date")
