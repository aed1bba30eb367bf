"""The documentation against the code: the command reference against the parser, the
documented JSON schemas against real outputs, the README's examples against the CLI."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from neural_kmeans.app.cli import build_parser, main
from neural_kmeans.app.cli_reference import BEGIN, END, reference

ROOT = Path(__file__).parents[1]
CLI_PAGE = ROOT / "docs" / "cli.md"
METRICS = {"acc", "nmi", "ari", "rand", "purity"}


def test_the_cli_page_holds_the_parser_s_reference():
    text = CLI_PAGE.read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert block == reference().strip(), (
        "docs/cli.md is out of date: python -m neural_kmeans.app.cli_reference docs/cli.md"
    )


def _schemas() -> dict[str, object]:
    text = CLI_PAGE.read_text()
    blocks = re.findall(r"```json schema:(\S+)\n(.*?)```", text, flags=re.S)
    return {name: json.loads(body) for name, body in blocks}


def conforms(value: object, template: object, where: str = "") -> list[str]:
    """The places where ``value`` departs from a documented ``template``: dicts with the
    same keys (an upper-case key stands for any key), lists of one kind, and leaves
    named by their types (``str|null``), ``SCORES`` (the metrics or null), ``STAT``
    (mean and std) and ``STATS`` (a STAT per metric, or null)."""
    if isinstance(template, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r:.60}"]
        if len(template) == 1 and next(iter(template)).isupper():
            (inner,) = template.values()
            return [e for k, v in value.items() for e in conforms(v, inner, f"{where}.{k}")]
        problems = [f"{where}: keys {sorted(set(value) ^ set(template))} differ"]
        if set(value) == set(template):
            problems = []
        return problems + [
            e
            for k in set(value) & set(template)
            for e in conforms(value[k], template[k], f"{where}.{k}")
        ]
    if isinstance(template, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [e for i, v in enumerate(value) for e in conforms(v, template[0], f"{where}[{i}]")]
    return [] if _leaf(value, str(template)) else [f"{where}: {value!r:.60} is not {template}"]


def _leaf(value: object, kinds: str) -> bool:
    for kind in kinds.split("|"):
        if kind == "null" and value is None:
            return True
        if kind == "SCORES" and (
            value is None or (isinstance(value, dict) and set(value) == METRICS)
        ):
            return True
        if kind == "STAT" and isinstance(value, dict) and set(value) == {"mean", "std"}:
            return True
        if kind == "STATS" and (
            value is None or (isinstance(value, dict) and set(value) == METRICS)
        ):
            return True
        types = {"str": str, "int": int, "float": (int, float), "bool": bool, "object": dict}
        if (
            kind in types
            and isinstance(value, types[kind])
            and not isinstance(value, bool) ^ (kind == "bool")
        ):
            return True
    return False


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("docs")
    two = ["--seed", "0", "1", "--max-iter", "2"]
    commands = {
        "results.json": ["run", "--max-iter", "2"],
        "compare.json": ["compare", "--methods", "mlp", "kmeans", *two],
        "sweep.json": ["sweep", "--methods", "linear", "kmeans", "--clusters", "3", "4", *two],
    }
    documents = {}
    for name, argv in commands.items():
        out = folder / name.split(".")[0]
        assert main([*argv, "--quiet", "--out", str(out)]) == 0
        documents[name] = json.loads((out / name).read_text())
    return documents


@pytest.mark.parametrize("name", ["results.json", "compare.json", "sweep.json"])
def test_the_documented_schemas_are_the_outputs(outputs, name):
    schema = _schemas()[name]
    assert conforms(outputs[name], schema) == []


def test_every_example_command_of_the_readme_and_the_cli_page_parses():
    """Each ``neural-kmeans ...`` line of the docs is a valid command line."""
    parser = build_parser()
    for page in (ROOT / "README.md", CLI_PAGE):
        for line in re.findall(r"^(?:\$ )?neural-kmeans ([^\n#]+)", page.read_text(), flags=re.M):
            argv = shlex.split(line.strip().rstrip("\\").replace("&&", "#").split("#")[0])
            try:
                parser.parse_args(argv)
            except SystemExit as exit_:  # --help, --version
                assert exit_.code == 0, line
