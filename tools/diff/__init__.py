"""Offline plan diff: what a change of the program does to each stack, in the words of
``pulumi preview --diff`` (the command and the rules it follows: ``tools.diff.command``).

``model`` (changes, danger), ``compare`` (input by input), ``cascade`` (through the
dependency graph), ``effects`` (delete-first, rolls), ``stack`` (one stack's diff),
``report`` (the text, with room for extra sections) and ``command``.
"""

from __future__ import annotations

from tools.diff.command import main
from tools.diff.compare import property_changes
from tools.diff.model import Change, PropertyChange, StackDiff
from tools.diff.report import render
from tools.diff.stack import diff_resources, diff_stacks

__all__ = [
    "Change",
    "PropertyChange",
    "StackDiff",
    "diff_resources",
    "diff_stacks",
    "main",
    "property_changes",
    "render",
]
