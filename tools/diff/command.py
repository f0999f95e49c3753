"""Offline plan diff: what a change of the program does to each stack, in the words of
``pulumi preview --diff``: create, update, replace or delete, property by property.

    python -m tools.plan diff origin/main tier3
    python -m tools.plan diff origin/main --all
    python -m tools.plan diff HEAD~1 --all --allow-replace <urn> --markdown

Both sides are evaluated under the same mocks by today's harness: the working tree as it is,
the base ref from ``git archive`` (``tools.revision`` says why today's harness).

Matching follows the engine: a resource takes over the base resource whose URN it answers
to (its own, or one its aliases or its ancestors' aliases name), so a move with an alias is
no change. A changed input is a replacement when the provider's table
(``tools/replacements``) or the resource's ``replaceOnChanges`` says so, else an update; a
type no table covers fails the diff. ``ignoreChanges`` paths are not changes, nor is what
the providers themselves keep (``tools.provider_diff``: an Optional+Computed input the
program stops setting, a parameter's ``applyMethod`` alone), nor an input set to its schema
default. What a change does to the resources reading its outputs follows the dependency
graph (``tools.diff.cascade``). Secret values are compared but never printed.

Dangerous changes are listed first (``tools.diff.model``): replacing or deleting a protected
resource, a data store tagged ``data-classification = ferpa``, anything on the data tier
(databases, caches, buckets, keys, queues, tables), the load balancer, the VPC, the cluster
or the namespace. A deletion that ``retainOnDelete`` keeps in the account loses nothing.
The command exits 1 on such a change unless ``--allow-replace <urn>`` names it.

Exit status: 0, 1 on a refused change, 2 on an error (a bad ref, a spec error, a type no
replacement table covers).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tools import posture, revision
from tools.diff.model import StackDiff
from tools.diff.report import SECTIONS, Section, SectionMaker, render
from tools.diff.stack import diff_stacks
from tools.harness import stacks as all_stacks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan diff",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("base", help="the git ref to compare with (origin/main, HEAD~1)")
    parser.add_argument("stack", nargs="?", help=f"one of {', '.join(all_stacks())}")
    parser.add_argument("--all", action="store_true", help="every stack")
    parser.add_argument(
        "--allow-replace",
        action="append",
        default=[],
        metavar="URN",
        help="a dangerous replacement or deletion made on purpose (repeatable; the environment "
        "variable ALLOW_REPLACE adds space-separated URNs)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="wrap each stack's diff for a PR comment"
    )
    posture.add_arguments(parser)  # --allow-broadening
    args = parser.parse_args(argv)
    if args.all == bool(args.stack) or (args.stack and args.stack not in all_stacks()):
        parser.error(f"name a stack or --all: {', '.join(all_stacks())}")
    stacks = all_stacks() if args.all else [args.stack]
    try:
        base, head = revision.evaluate(args.base, stacks)
        diffs = diff_stacks(base, head, stacks)
    except (ValueError, RuntimeError) as exc:
        print(f"plan diff: {exc}", file=sys.stderr)
        return 2
    allowed = [*args.allow_replace, *os.environ.get("ALLOW_REPLACE", "").split()]
    sections = [*SECTIONS, _security_posture(posture.allowed(args))]
    refused = False
    for diff in diffs:
        text, blocked = render(diff, args.base, allowed, sections)
        refused |= blocked
        if args.markdown:
            text = f"### Offline plan diff: `{diff.stack}`\n\n```diff\n{text}```\n"
        sys.stdout.write(text + ("\n" if args.all else ""))
    return 1 if refused else 0


def _security_posture(allowed_broadening: list[str]) -> SectionMaker:
    """Who gains or loses access (``tools.posture``): refused on a broadening that
    ``--allow-broadening`` does not name, whatever ``--allow-replace`` names."""

    def section(diff: StackDiff, _allowed_replace: frozenset[str]) -> Section:
        text, refused = posture.section(diff.base, diff.head, allowed_broadening)
        return Section(text.strip("\n").splitlines(), refused)

    return section


if __name__ == "__main__":
    sys.exit(main())
