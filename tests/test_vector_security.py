"""Hostile SVG and PDF inputs: nothing is fetched, no file is read, no script runs.

Every SVG reference points at a loopback HTTP listener the test runs (which records every
connection and would answer with a red PNG), at file:///etc/passwd, and at a PNG this test
writes in a temporary directory in a colour no test drawing uses. The renders must make no
connection and equal the render of the same SVG with those elements removed.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pypdfium2
import pytest
import resvg_py
from PIL import Image

from jobs.errors import ErrorCode, FleetError
from tests.images import pdf_of
from worker import pdf, svg
from worker.codec import Limits, decode

LEAK = (1, 254, 3)  # the colour of every file and response a render must not show
SIZE = (40, 30)
SVG_HEAD = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    ' width="40" height="30"'
)
BASE = '<rect x="5" y="5" width="20" height="10" fill="#3050d0"/>'


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


class Listener:
    """A loopback HTTP server recording every connection (each answered with a PNG)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        body = _png(LEAK)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(4096))
                    conn.sendall(
                        b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                except OSError:
                    self.connections.append(b"")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def leak_png(tmp_path: Path) -> Path:
    path = tmp_path / "leak.png"
    path.write_bytes(_png(LEAK))
    return path


def _document(body: str, root_attrs: str = "") -> bytes:
    return f"{SVG_HEAD}{root_attrs}>{BASE}{body}</svg>".encode()


def _render(data: bytes) -> np.ndarray:
    frame, _ = svg.render(data, SIZE)
    return frame


def _hostile(url: str, png: Path) -> dict[str, str]:
    """Each hostile construct: the markup that the clean document lacks."""
    inner = base64.b64encode(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><image href="{png}"'
        ' width="40" height="30"/></svg>'.encode()
    ).decode()
    return {
        "image href http": f'<image href="{url}/a.png" width="40" height="30"/>',
        "image xlink:href http": f'<image xlink:href="{url}/b.png" width="40" height="30"/>',
        "image href /etc/passwd": '<image href="file:///etc/passwd" width="40" height="30"/>',
        "image href local png": f'<image href="{png}" width="40" height="30"/>',
        "image href file: png": f'<image href="file://{png}" width="40" height="30"/>',
        "image href relative": f'<image href="../{png.parent.name}/{png.name}" width="40"'
        ' height="30"/>',
        "image nested svg data": f'<image href="data:image/svg+xml;base64,{inner}" width="40"'
        ' height="30"/>',
        "use href http": f'<use href="{url}/c.svg#x"/>',
        "use xlink:href file": f'<use xlink:href="{png}#x"/>',
        "style @import": f"<style>@import url({url}/d.css); @import '{png}';</style>",
        "style url()": f'<style>.evil {{ fill: url({url}/e.svg#g) }}</style><rect class="evil"'
        ' width="40" height="30"/>',
        "style attribute url()": f'<rect width="40" height="30" style="fill:url({url}/f#g)"/>',
        "filter url()": f'<rect width="40" height="30" filter="url({url}/g.svg#f)"/>',
        "feImage href": f'<filter id="fi"><feImage href="{png}"/></filter>'
        '<rect width="40" height="30" filter="url(#fi)"/>',
        "foreignObject": f'<foreignObject width="40" height="30"><img xmlns="http://www.w3.org'
        f'/1999/xhtml" src="{url}/h.png"/></foreignObject>',
        "script": f"<script>fetch('{url}/i')</script>",
    }


CASES = list(_hostile("http://x", Path("/x/y.png")))


@pytest.mark.parametrize("case", CASES)
def test_hostile_references_fetch_nothing_and_read_no_file(
    case: str, listener: Listener, leak_png: Path
) -> None:
    hostile = _hostile(listener.url, leak_png)[case]
    clean = _render(_document(""))
    rendered = _render(_document(hostile))
    time.sleep(0.2)  # a connection made in the background would be recorded by now
    assert listener.connections == []
    assert np.array_equal(rendered, clean), case
    assert not (rendered[:, :, :3] == LEAK).all(axis=2).any()  # (the leak colour nowhere)


def test_the_sanitiser_is_what_stops_local_files(leak_png: Path) -> None:
    """Without it resvg would draw a local file: the tests above would catch a leak."""
    hostile = _document(f'<image href="{leak_png}" width="40" height="30"/>').decode()
    png = resvg_py.svg_to_bytes(svg_string=hostile, dpi=96)
    raw = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert (raw == LEAK).all(axis=2).sum() > 100
    assert not (_render(hostile.encode())[:, :, :3] == LEAK).all(axis=2).any()


def test_processing_instruction_and_doctype_are_dropped(listener: Listener) -> None:
    head = (
        f'<?xml version="1.0"?><?xml-stylesheet href="{listener.url}/s.css"?>'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"'
        f' "{listener.url}/svg11.dtd">'
    )
    data = head.encode() + _document("")
    assert np.array_equal(_render(data), _render(_document("")))
    time.sleep(0.2)
    assert listener.connections == []


def test_event_handlers_and_scripts_are_removed_before_rendering() -> None:
    hostile = _document(
        '<script>document.rootElement.remove()</script><rect width="5" height="5"'
        ' onclick="x()" fill="#102030"/>',
        root_attrs=' onload="document.rootElement.remove()"',
    )
    tree = svg.sanitise(hostile)
    markup = ET.tostring(tree).decode()
    assert "script" not in markup and "onload" not in markup and "onclick" not in markup
    clean = _document('<rect width="5" height="5" fill="#102030"/>')
    assert np.array_equal(_render(hostile), _render(clean))


ENTITY_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE svg ['
    + b'<!ENTITY a0 "ha">'
    + b"".join(b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 10))
    + b']><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&a9;</text></svg>'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&x;</text></svg>'
)


@pytest.mark.parametrize("data", [ENTITY_BOMB, EXTERNAL_ENTITY], ids=["bomb", "external"])
def test_entity_declarations_fail_fast(data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(FleetError) as caught:
        svg.render(data, (10, 10))
    assert caught.value.code is ErrorCode.IMAGE_PARSE_FAILED
    assert time.perf_counter() - started < 1.0  # 10^9 "ha"s were never expanded


def test_unparseable_svg_is_a_parse_failure() -> None:
    with pytest.raises(FleetError) as caught:
        decode(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g>', Limits())
    assert caught.value.code is ErrorCode.IMAGE_PARSE_FAILED


# --- PDF ---------------------------------------------------------------------------------


def make_pdf(content: bytes, catalog_extra: bytes = b"", extra_objects: tuple = ()) -> bytes:
    """A one-page 40x30 pt PDF with `content` as its page's content stream."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R" + catalog_extra + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 40 30] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        *extra_objects,
    ]
    return pdf_of(objects)


RED_BOX = b"1 0 0 rg 10 5 20 10 re f"


def test_pypdfium2_has_no_javascript_engine() -> None:
    flags = set(pypdfium2.PDFIUM_INFO.flags)
    assert "V8" not in flags and "XFA" not in flags, pypdfium2.PDFIUM_INFO


def test_pdf_javascript_never_runs(listener: Listener) -> None:
    script = b"this.getURL('%s/js'); app.launchURL('%s/js2'); this.pageNum = 0;" % (
        listener.url.encode(),
        listener.url.encode(),
    )
    js = b"<< /Type /Action /S /JavaScript /JS (" + script + b") >>"
    uri = b"<< /Type /Action /S /URI /URI (" + listener.url.encode() + b"/uri) >>"
    hostile = make_pdf(RED_BOX, b" /OpenAction 5 0 R /AA << /WC 6 0 R >>", (js, uri))
    clean = make_pdf(RED_BOX)
    assert pdf.probe(hostile).frames == 1  # PDFium reads it as a PDF
    drawn = pdf.render(hostile, 0, (80, 60))
    assert np.array_equal(drawn, pdf.render(clean, 0, (80, 60)))
    assert tuple(drawn[30, 40]) == (255, 0, 0) and tuple(drawn[2, 2]) == (255, 255, 255)
    time.sleep(0.2)
    assert listener.connections == []


def test_the_listener_records_a_fetch(listener: Listener) -> None:
    """The zero-connection assertions above can fail: a real fetch is recorded."""
    import urllib.request

    with urllib.request.urlopen(f"{listener.url}/probe", timeout=5) as response:
        assert response.read() == _png(LEAK)
    assert len(listener.connections) == 1 and b"GET /probe" in listener.connections[0]
