"""from-html: render caller HTML in the sandboxed browser of this worker process."""

from __future__ import annotations

import atexit
from dataclasses import replace
from typing import Any

from imagefleet.settings import settings
from jobs.render import FromHtmlJob
from worker import codec
from worker.browser import Renderer
from worker.ops import OpOutput
from worker.picture import Picture

_renderer: Renderer | None = None


def renderer() -> Renderer:
    """This process's browser, started on first use (after the pool forked)."""
    global _renderer
    if _renderer is None:
        cfg = settings()
        _renderer = Renderer(
            cfg.chromium_path,
            timeout=cfg.render_timeout,
            max_side=cfg.render_max_side,
            max_megapixels=cfg.max_megapixels,
        )
        atexit.register(shutdown)
    return _renderer


def shutdown() -> None:
    global _renderer
    if _renderer is not None:
        _renderer.close()
        _renderer = None


def from_html(inputs: list[Picture], spec: FromHtmlJob) -> OpOutput:
    options: dict[str, Any] = {"fullPage": spec.full_page, "omitBackground": spec.omit_background}
    if spec.clip is not None:
        options["clip"] = {
            "x": spec.clip.x,
            "y": spec.clip.y,
            "width": spec.clip.width,
            "height": spec.clip.height,
        }
    png = renderer().render(spec.html, spec.width, spec.height, options)
    cfg = settings()
    picture = codec.decode(png, codec.Limits(cfg.max_megapixels, 1))
    return OpOutput(replace(picture, format=spec.type))
