"""`python -m app <command>`: every command the parser accepts has the function that runs it."""

from __future__ import annotations

import argparse

from app.cli.main import COMMANDS, build_parser


def test_every_command_has_its_function() -> None:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)  # the same commands, in --help's order
