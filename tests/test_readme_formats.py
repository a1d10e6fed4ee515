"""The README's Formats section: its job examples are valid specs, and the sizes its comments
state are what jobs.rasters.at_density (the rule the quote and the render share) gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jobs.rasters import at_density
from jobs.registry import decode_spec, operation_of

README = Path(__file__).resolve().parent.parent / "README.md"


def _formats_block() -> str:
    text = README.read_text()
    section = text[text.index("\n## Formats\n") :]
    block = section[section.index("```jsonc\n") + len("```jsonc\n") :]
    return block[: block.index("\n```\n")]


def test_formats_examples_are_valid_specs() -> None:
    bodies = [line for line in _formats_block().splitlines() if line.startswith("{")]
    assert len(bodies) == 3
    for raw in bodies:
        body = json.loads(raw)
        spec = decode_spec(json.dumps(body).encode())
        assert operation_of(spec).name == body["operation"]


def test_formats_examples_state_the_drawn_sizes() -> None:
    comments = _formats_block()
    assert re.search(r"100x50 px SVG logo drawn at 300 dpi: 417x208 px", comments)
    assert at_density((100, 50), 300) == (417, 208)
    assert re.search(r"\(US Letter, 612x792 pt\) at 150 dpi, 1275x1650 px", comments)
    assert at_density((612, 792), 150) == (1275, 1650)


def _bodies(block: str) -> list[str]:
    """The JSON bodies of a jsonc block (`//` comment lines apart), one or several lines each."""
    bodies, current = [], ""
    for line in block.splitlines():
        if line.startswith("//") or not line.strip():
            continue
        current += line
        try:
            json.loads(current)
        except ValueError:
            continue  # the body goes on
        bodies.append(current)
        current = ""
    assert not current, f"an unfinished body: {current[:80]}"
    return bodies


def test_web_ready_examples_are_valid_specs() -> None:
    text = README.read_text()
    section = text[text.index("\n## Web-ready outputs\n") :]
    block = section[section.index("```jsonc\n") + len("```jsonc\n") :]
    names = []
    for raw in _bodies(block[: block.index("\n```\n")]):
        names.append(operation_of(decode_spec(raw.encode())).name)
    assert names == ["variants", "placeholder"]
