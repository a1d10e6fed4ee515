"""The operator's settings that job specs check at admission, as the specs see them.

`imagefleet.settings.Settings` is one; jobs/ declares only what it reads, so the specs
(which the client ships) never import the server's configuration.
"""

from __future__ import annotations

from typing import Protocol


class Policy(Protocol):
    @property
    def max_megapixels(self) -> float: ...  # per raster (FLEET_MAX_MEGAPIXELS)

    @property
    def max_work_megapixels(self) -> float: ...  # every raster a job creates, added up

    @property
    def max_frames(self) -> int: ...

    @property
    def ocr_langs(self) -> tuple[str, ...]: ...  # the OCR roster

    @property
    def max_html_bytes(self) -> int: ...

    @property
    def render_max_side(self) -> int: ...  # from-html viewport and page sides

    @property
    def max_variants(self) -> int: ...  # outputs of one variants job
