"""MkDocs hook: the command-line reference is generated from searchlearn's argument parsers, so it cannot drift.

A page holding the marker `<!-- cli-reference -->` gets, in its place, one section per subcommand (nested ones too)
with the parser's own `--help` text.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- cli-reference -->"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _sections(parser: argparse.ArgumentParser, depth: int = 2) -> list[str]:
    out = [f"{'#' * depth} `{parser.prog}`\n\n```text\n{parser.format_help().rstrip()}\n```\n"]
    for child in _subcommands(parser).values():
        out += _sections(child, depth + 1 if depth < 4 else depth)
    return out


def reference() -> str:
    from searchlearn.cli.main import parser

    os.environ["COLUMNS"] = "110"  # argparse wraps its help to the terminal's width: make it the same everywhere
    return "\n".join(_sections(parser()))


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 — MkDocs' hook signature
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
