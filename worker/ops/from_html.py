"""from-html: render caller HTML in the sandboxed browser of this worker process."""

from __future__ import annotations

import atexit
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jobs.render import FromHtmlJob
from worker import codec
from worker.browser import Renderer
from worker.ops import OpOutput
from worker.picture import Picture

if TYPE_CHECKING:
    from imagefleet.settings import Settings

_renderer: Renderer | None = None


def renderer(cfg: Settings) -> Renderer:
    """This process's browser, started on first use (after the pool forked)."""
    global _renderer
    if _renderer is None:
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


def from_html(inputs: list[Picture], spec: FromHtmlJob, cfg: Settings) -> OpOutput:
    options: dict[str, Any] = {"fullPage": spec.full_page, "omitBackground": spec.omit_background}
    if spec.clip is not None:
        options["clip"] = {
            "x": spec.clip.x,
            "y": spec.clip.y,
            "width": spec.clip.width,
            "height": spec.clip.height,
        }
    png = renderer(cfg).render(spec.html, spec.width, spec.height, options)
    picture = codec.decode(png, codec.Limits(cfg.max_megapixels, 1))
    return OpOutput(replace(picture, format=spec.type))
