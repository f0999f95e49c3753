"""docs/components.md: generated from the components' source, current, and fully described."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import docs

FIXTURE_PACKAGE = "docs_fixture_components"


_SIZES = '''
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WidgetSize:
    """How big a widget is."""

    count: int = 2
    """Widgets | one per AZ."""
'''


_WIDGET = '''
"""A fake component for the renderer's tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from docs_fixture_components.shared.sizes import WidgetSize

TOKEN = "test:widget:Widget"


@dataclass
class WidgetArgs:
    name: str
    """Name of the widget,
    on two lines."""
    sizes: Sequence[WidgetSize]
    """Sizes of the widget."""
    colour: str | None = "blue"
    """Paint of the widget."""
    tags: dict[str, str] = field(default_factory=dict)
    undocumented: int = 3


class Widget(pulumi.ComponentResource):
    """Makes widgets."""

    widget_id: pulumi.Output[str]
    """ID of the widget | a secret."""
    bare: pulumi.Output[str]
    _private: int

    def __init__(self, name: str, args: WidgetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TOKEN, name, None, opts)
'''


@pytest.fixture
def fixture_root(tmp_path: Path) -> Iterator[Path]:
    """A throwaway package: one component in a module, its shared type in a subpackage."""
    package = tmp_path / FIXTURE_PACKAGE
    (package / "shared").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "shared" / "__init__.py").write_text("")
    (package / "shared" / "sizes.py").write_text(textwrap.dedent(_SIZES))
    (package / "widget.py").write_text(textwrap.dedent(_WIDGET))
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0] == FIXTURE_PACKAGE]:
        del sys.modules[name]


def test_components_md_is_current() -> None:
    current = docs.OUTPUT.read_text(encoding="utf-8") if docs.OUTPUT.exists() else ""
    assert current == docs.render(), (
        "docs/components.md does not match the components: run `make docs`"
    )


def test_render_shows_inputs_outputs_and_shared_types(fixture_root: Path) -> None:
    text = docs.render(FIXTURE_PACKAGE, fixture_root)
    lines = text.splitlines()

    assert "## Widget" in lines
    assert "Type token `test:widget:Widget`" in text
    assert f"`{FIXTURE_PACKAGE}/widget.py`" in text
    assert "Makes widgets." in lines

    def row(name: str) -> str:
        return next(line for line in lines if line.startswith(f"| `{name}` |"))

    # A required field, its description collapsed to one line.
    assert row("name") == "| `name` | `str` | required | Name of the widget, on two lines. |"
    # A default and a type with `|`, escaped for the table.
    assert row("colour") == "| `colour` | `str \\| None` | `'blue'` | Paint of the widget. |"
    assert row("tags").startswith("| `tags` | `dict[str, str]` | `{}` |")
    assert row("undocumented") == "| `undocumented` | `int` | `3` |  |"
    # Outputs: described, undescribed, and no private attribute.
    assert (
        row("widget_id")
        == "| `widget_id` | `pulumi.Output[str]` | ID of the widget \\| a secret. |"
    )
    assert row("bare") == "| `bare` | `pulumi.Output[str]` |  |"
    assert "_private" not in text
    # The shared type, found through `Sequence[WidgetSize]` in a subpackage.
    assert "## Shared types" in lines
    assert "### WidgetSize" in lines
    assert "Used by `WidgetArgs.sizes`." in lines
    assert row("count") == "| `count` | `int` | `2` | Widgets \\| one per AZ. |"
    assert docs.render(FIXTURE_PACKAGE, fixture_root) == text

    missing = docs.collect(FIXTURE_PACKAGE, fixture_root).missing_docstrings()
    assert missing == [
        f"{FIXTURE_PACKAGE}/widget.py: WidgetArgs.tags (input of Widget)",
        f"{FIXTURE_PACKAGE}/widget.py: WidgetArgs.undocumented (input of Widget)",
        f"{FIXTURE_PACKAGE}/widget.py: Widget.bare (output)",
    ]


def test_every_input_and_output_has_a_docstring() -> None:
    reference = docs.collect()
    assert reference.components, "no component found under components/"
    missing = reference.missing_docstrings()
    assert not missing, f"{len(missing)} input(s)/output(s) without a docstring:\n" + "\n".join(
        missing
    )
