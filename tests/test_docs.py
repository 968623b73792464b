"""README.md and docs/*.md stay true to the tree: every relative link (and its #anchor) points at a file
and heading that exist, and every command they quote names a real `make` target, a real `denseface`
subcommand with real options, a real script with its options, a real deploy/containers.sh command."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from denseface.cli import build_parser
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
README_LINES = 300


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link: its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_points_at_something_that_exists(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists() or (anchor and where.suffix == ".md" and anchor not in anchors(where)):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def commands(page: Path) -> list[str]:
    """The command lines a page quotes: in shell code blocks, and inline code that starts with a tool."""
    found = []
    text = page.read_text()
    for language, body in FENCE.findall(text):
        if language in ("sh", "shell", "bash", "console"):
            joined = re.sub(r"\\\n\s*", " ", body)
            found += [line.strip() for line in joined.splitlines() if line.strip()]
    found += INLINE.findall(FENCE.sub("", text))
    tools = ("make ", "denseface ", "python benchmarks/", "bash deploy/containers.sh ")
    return [line for line in found if line.startswith(tools)]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def words(line: str) -> list[str]:
    line = line.split("  #")[0].split(" # ")[0]
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def check(line: str, make_targets: set[str]) -> str | None:
    """None if ``line`` is a real command, else what is wrong with it."""
    tokens = words(line)
    if tokens[0] == "make":
        missing = [t for t in tokens[1:] if re.fullmatch(r"[a-z][\w-]*", t) and t not in make_targets]
        return f"no make target {missing}" if missing else None
    if tokens[0] == "python":
        script = ROOT / tokens[1]
        if not script.is_file():
            return f"no script {tokens[1]}"
        source = script.read_text() + "".join(p.read_text() for p in script.parent.glob("*.py"))
        flags = [t.split("=")[0] for t in tokens[2:] if t.startswith("--")]
        missing = [f for f in flags if f'"{f}"' not in source]
        return f"{tokens[1]} has no {missing}" if missing else None
    if tokens[0] == "bash":
        script = (ROOT / tokens[1]).read_text()
        return None if len(tokens) < 3 or f"    {tokens[2]})" in script else f"no command {tokens[2]}"
    parser = build_parser()
    flags = options(parser)
    rest = tokens[1:]
    while rest and rest[0].startswith("-"):  # options before the subcommand (--model-dir DIR, -v)
        rest = rest[2:] if rest[0] == "--model-dir" else rest[1:]
    if not rest:
        return None
    commands_ = subparsers(parser)
    names = [n for n in re.split(r"[|]", rest[0]) if n]
    if not names or any(n not in commands_ for n in names):
        return f"no subcommand {rest[0]}"
    sub = commands_[names[0]]
    flags = options(sub)
    nested = subparsers(sub)
    if nested and len(rest) > 1:
        for name in re.split(r"[|]", rest[1].strip("[]")):
            if name and not name.startswith("-") and name.isalpha() and name not in nested:
                return f"no `{names[0]} {name}`"
            if name in nested:
                flags |= options(nested[name])
    for token in rest[1:]:
        for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", token):
            if flag not in flags and flag not in options(parser):
                return f"denseface {names[0]} has no {flag}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_quoted_command_exists(page: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    problems = {line: why for line in commands(page) if (why := check(line, targets))}
    assert not problems, f"{page.name}: {problems}"


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_LINES, f"README.md has {len(lines)} lines (at most {README_LINES})"


def test_the_checks_can_fail() -> None:
    targets = {"run", "test"}
    assert check("make run test", targets) is None
    assert check("make deploy", targets) is not None
    assert check("denseface batch photos/ --out rows.jsonl --workers 2", targets) is None
    assert check("denseface batch photos/ --out rows.jsonl --frobnicate", targets) is not None
    assert check("denseface keys set AKID --qps 0", targets) is None
    assert check("denseface keys remove AKID", targets) is not None
    assert check("denseface nosuch", targets) is not None
    assert check("python benchmarks/speed.py", targets) is None
    assert check("python benchmarks/nope.py", targets) is not None
    assert check("bash deploy/containers.sh image", targets) is None
    assert check("bash deploy/containers.sh push", targets) is not None
    assert slug("Finding faces (recall)") == "finding-faces-recall"
    assert slug("Official Python SDK (`pip install tencentcloud-sdk-python-iai`)") == (
        "official-python-sdk-pip-install-tencentcloud-sdk-python-iai"
    )
