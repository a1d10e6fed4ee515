"""Operations are declared once, on their specs: the registry, the pipeline's steps, the
client's methods and the docs all come from the declaration, and a spec refuses the fields
its operation does not read."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

import jobs
from jobs.analysis import MetadataJob
from jobs.formats import ConvertJob
from jobs.geometry import ResizeJob
from jobs.ocr import OcrJob
from jobs.operation import Operation
from jobs.pipeline import PipelineJob, step
from jobs.pools import JOB_POOLS
from jobs.registry import OPERATIONS, decode_spec, operation_of
from jobs.spec import JobSpec

ROOT = Path(__file__).resolve().parent.parent


def error_of(body: dict[str, Any]) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        decode_spec(json.dumps(body).encode())
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operation": "ocr", "input": "x.png", "format": "avif", "output": "z.avif"}, "format"),
        ({"operation": "ocr", "input": "x.png", "output": "z.txt"}, "output"),
        ({"operation": "ocr", "input": "x.png", "page": 1}, "page"),
        ({"operation": "ocr", "input": "x.png", "animated": True}, "animated"),
        ({"operation": "metadata", "input": "x.png", "quality": 50}, "quality"),
        ({"operation": "metadata", "input": "x.png", "inline": True}, "inline"),
        ({"operation": "dominant-color", "input": "x.png", "animated": True}, "animated"),
        ({"operation": "dominant-color", "input": "x.png", "output": "o.png"}, "output"),
        ({"operation": "from-html", "html": "<p>", "format": "png"}, "format"),
        ({"operation": "contact-sheet", "files": ["a.png"], "page": 2}, "page"),
    ],
)
def test_a_field_the_operation_ignores_is_refused_by_name(body: dict[str, Any], field: str) -> None:
    assert error_of(body) == f"Object contains unknown field `{field}` - at `$`"


def test_the_fields_an_operation_reads_are_still_taken() -> None:
    meta = decode_spec(b'{"operation":"metadata","input":"a.gif","page":1,"animated":true}')
    assert isinstance(meta, MetadataJob)
    assert (meta.page, meta.animated, meta.output, meta.inline) == (1, True, None, False)
    ocr = decode_spec(b'{"operation":"ocr","input":"a.tif","webhook_url":"https://h.example/"}')
    assert isinstance(ocr, OcrJob)
    assert ocr.webhook_url == "https://h.example/" and ocr.output is None and ocr.page == 0


PIPELINE = {"operation": "pipeline", "input": "p.png"}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [{"operation": "grayscale"}, {"operation": "blur", "sigma": 0}],
            "Expected `float` >= 0.3 - at `$.steps[1].sigma`",
        ),
        (
            [{"operation": "crop", "rect": {"x": 0, "y": 0, "width": 1, "height": 1}, "width": 3}],
            "a rect crop uses `rect.width` and `rect.height` - at `$.steps[0]`",
        ),
        (
            [{"operation": "resize", "width": 5}, {"operation": "rotate", "angle": "x"}],
            "Expected `float`, got `str` - at `$.steps[1].angle`",
        ),
        ([{"operation": "blur", "input": "b.png"}], "unknown field `input` - at `$.steps[0]`"),
        (
            [{"operation": "crop", "gravity": "center", "width": 2, "height": 2, "quality": 3}],
            "unknown field `quality` - at `$.steps[0]`",
        ),
        (
            [{"operation": "sharpen"}, {"sigma": 2}],
            "missing required field `operation` - at `$.steps[1]`",
        ),
        (
            [{"operation": "sharpen"}, {"operation": "metadata"}],
            "'metadata' cannot be a pipeline step; steps are one of adjust, blur,",
        ),
        ([{"operation": "sepia"}], "unknown operation 'sepia'; expected one of adjust,"),
        ([], "Expected `array` of length >= 1 - at `$.steps`"),
    ],
)
def test_pipeline_step_errors_name_the_step(steps: list[dict[str, Any]], expected: str) -> None:
    message = error_of({**PIPELINE, "steps": steps})
    assert expected in message, message
    if "cannot be" in expected or "unknown operation" in expected:
        assert message.endswith(f"- at `$.steps[{len(steps) - 1}].operation`"), message


def test_pipeline_steps_decode_typed_and_become_job_specs() -> None:
    spec = decode_spec(
        json.dumps(
            {
                **PIPELINE,
                "quality": 60,
                "steps": [
                    {"operation": "resize", "width": 100, "fit": "inside"},
                    {"operation": "convert", "format": "webp"},
                ],
            }
        ).encode()
    )
    assert isinstance(spec, PipelineJob)
    assert [operation_of(s).name for s in spec.steps] == ["resize", "convert"]
    resize, convert = spec.step_jobs()
    assert isinstance(resize, ResizeJob) and isinstance(convert, ConvertJob)
    assert resize.input == "p.png" and resize.width == 100
    assert convert.format == "webp" and convert.quality is None
    assert spec.steps[0] == step("resize", width=100, fit="inside")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.sigma"):
        step("blur", sigma=0)


def missing_handlers(operations: list[Operation]) -> list[str]:
    """Operations whose handler (worker.ops.<name>:<name>) cannot be loaded."""
    missing = []
    for op in operations:
        try:
            handler = op.load_handler()
        except (ImportError, AttributeError):
            missing.append(op.name)
            continue
        if not callable(handler):
            missing.append(op.name)
    return missing


def test_every_operation_is_consistent_and_has_its_handler() -> None:
    assert OPERATIONS and list(OPERATIONS) == sorted(OPERATIONS)
    for name, op in OPERATIONS.items():
        assert op.name == name and op.spec.__struct_config__.tag == name
        assert op.spec.declared is op
        assert op.queue in JOB_POOLS
        assert op.billing.price(0.5) > 0
        assert 0 < op.soft_time_limit < op.time_limit
        assert (op.step is not None) == op.pipeline_step
    assert missing_handlers(list(OPERATIONS.values())) == []


def test_a_missing_handler_is_detected() -> None:
    from jobs.declare import operation
    from jobs.pools import Pool
    from jobs.spec import TransformJob

    @operation(Pool.CPU, example={}, step=True)
    class NoHandlerJob(TransformJob, tag="no-handler", kw_only=True):
        """An operation nobody wrote a handler for."""

    assert NoHandlerJob.declared is not None
    assert NoHandlerJob.declared.handler == "worker.ops.no_handler:no_handler"
    assert missing_handlers([NoHandlerJob.declared]) == ["no-handler"]


def test_every_declared_spec_in_jobs_is_registered() -> None:
    """Discovery reads which modules declare operations; importing them all (now that the
    registry is loaded) finds no declared spec it missed."""
    declared = set()
    for info in pkgutil.iter_modules(jobs.__path__):
        module = importlib.import_module(f"jobs.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, JobSpec) and value.declared:
                declared.add(value.declared.name)
    assert declared == set(OPERATIONS)


# A new operation: its spec (with its declaration) and its handler, nothing else.
ECHO_SPEC = '''
from jobs.declare import operation
from jobs.pools import Pool
from jobs.prices import Flat
from jobs.spec import TransformJob


@operation(Pool.CPU, Flat(7), example={"times": 2}, step=True)
class EchoJob(TransformJob, tag="echo", kw_only=True):
    """Return the image unchanged, `times` times over."""

    times: int = 1
'''
ECHO_HANDLER = """
from worker.ops import OpOutput


def echo(inputs, spec, cfg):
    return OpOutput(inputs[0], {"times": spec.times})
"""
ECHO_CHECK = """
import json, sys
import jobs, worker.ops
jobs.__path__.append(sys.argv[1])
worker.ops.__path__.append(sys.argv[2])
import numpy as np
from imagefleet.client import Client
from imagefleet.docs import operations_markdown
from imagefleet.settings import load_settings
from jobs.registry import OPERATIONS, decode_spec, example_body, operation_of
from worker.picture import Picture

op = OPERATIONS["echo"]
spec = decode_spec(json.dumps(example_body(op)).encode())
assert operation_of(spec) is op and spec.times == 2 and op.billing.micros == 7
body = {"operation": "pipeline", "input": "a.png", "steps": [{"operation": "echo", "times": 3}]}
pipeline = decode_spec(json.dumps(body).encode())
picture = Picture(frames=[np.zeros((2, 3, 3), np.uint8)], format="png")
out = OPERATIONS["pipeline"].load_handler()([picture], pipeline, load_settings())
assert out.fields["steps"] == [{"operation": "echo", "width": 3, "height": 2, "times": 3}]
assert callable(Client.echo)
assert "### `echo`" in operations_markdown()
print("ok")
"""


def test_a_new_operation_needs_only_its_spec_and_its_handler(tmp_path: Path) -> None:
    specs, handlers = tmp_path / "jobs", tmp_path / "ops"
    specs.mkdir()
    handlers.mkdir()
    (specs / "echo.py").write_text(textwrap.dedent(ECHO_SPEC))
    (handlers / "echo.py").write_text(textwrap.dedent(ECHO_HANDLER))
    run = subprocess.run(
        [sys.executable, "-c", ECHO_CHECK, str(specs), str(handlers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
