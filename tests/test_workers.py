"""The server's worker processes, driven directly (real processes, real models): deadlines and
cancellation, a stuck worker, errors keeping their codes across the process boundary, start-up
failure, and the envelope spliced around a worker's JSON."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from denseface.api import Analyzer
from denseface.engine.decode import decode_bytes
from denseface.errors import (
    FaceTooSmallError,
    ImageDecodeError,
    ImageTooSmallError,
    InferenceError,
    ModelsMissingError,
    NoFaceError,
)
from denseface.rpc.actions.analyze_dense_landmarks import analyze_response, analyze_response_json
from denseface.rpc.envelope import ApiError, success_envelope, success_envelope_json
from denseface.rpc.service import AnalyzeJob, ServiceOptions
from denseface.server.run import stuck_after
from denseface.server.worker_process import WorkerConfig
from denseface.server.workers import ProcessPool
from tests.conftest import shared
from tests.faults import failing_analyzer, slow_analyzer

TWO_PEOPLE = shared("robustness", "face_recognition", "two_people.jpg").read_bytes()
JOB = AnalyzeJob(base64.b64encode(TWO_PEOPLE), base64=True, mode=0, rotate=False)


def with_pool(
    config: WorkerConfig, scenario: Callable[[ProcessPool], Awaitable[None]], **options: Any
) -> None:
    async def main() -> None:
        pool = ProcessPool(1, config, **options)
        await pool.start()
        try:
            await scenario(pool)
        finally:
            await pool.close()
        assert all(not w.pid or w.state == "stopped" for w in pool.stats().workers)

    asyncio.run(main())


async def eventually(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def test_a_timed_out_request_in_the_queue_never_starts(model_dir: Path, tmp_path: Path) -> None:
    """One worker busy on a slow job: a second job queued behind it times out and is dropped from the
    queue; the running one finishes in the worker (its answer dropped: it is within ``stuck_after``)
    and the worker serves on."""
    slow = functools.partial(slow_analyzer, model_dir, 1.5, tmp_path / "slept")

    async def scenario(pool: ProcessPool) -> None:
        running = asyncio.ensure_future(asyncio.wait_for(pool.run(JOB, "running"), 0.6))
        await eventually(lambda: pool.stats().busy == 1)
        queued = asyncio.ensure_future(asyncio.wait_for(pool.run(JOB, "queued"), 0.2))
        await eventually(lambda: pool.stats().queued == 1)
        for request in (queued, running):
            with pytest.raises(asyncio.TimeoutError):
                await request
        assert pool.stats().queued == 0
        assert pool.took_worker("queued") is None  # dropped from the queue: it never ran
        ran = pool.took_worker("running")
        assert ran is not None
        assert 0.3 < ran < 0.7  # it had run since it was dispatched
        assert pool.stats().busy == 1  # still running the first job
        await eventually(lambda: pool.stats().jobs == 1)
        answer = json.loads(await pool.run(JOB))
        assert len(answer["DenseFaceShapeSet"]) == 2
        stats = pool.stats()
        assert (stats.jobs, stats.restarts) == (2, 0)  # the queued job never ran

    with_pool(WorkerConfig(analyzer_factory=slow), scenario)


def test_a_stuck_worker_is_killed_and_replaced(model_dir: Path, tmp_path: Path) -> None:
    slow = functools.partial(slow_analyzer, model_dir, 600.0, tmp_path / "slept")

    async def scenario(pool: ProcessPool) -> None:
        first = pool.stats().workers[0].pid
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.run(JOB), 0.3)
        await eventually(lambda: pool.stats().restarts == 1 and pool.stats().alive == 1)
        assert pool.stats().workers[0].pid != first
        answer = json.loads(await pool.run(JOB))  # the replacement does not sleep (the marker exists)
        assert len(answer["DenseFaceShapeSet"]) == 2

    with_pool(WorkerConfig(analyzer_factory=slow), scenario, stuck_after=1.0)
    assert stuck_after(10) == 10.0  # the server kills a job that ran for the whole request deadline


def job(data: bytes, *, b64: bool = False, mode: int = 0) -> AnalyzeJob:
    return AnalyzeJob(data, base64=b64, mode=mode, rotate=False)


def test_errors_keep_their_class_and_code_across_the_process_boundary(model_dir: Path) -> None:
    tiny = io.BytesIO()
    with Image.open(io.BytesIO(TWO_PEOPLE)) as image:
        image.resize((60, 40)).save(tiny, "JPEG")
    no_face = shared("robustness", "mtcnn", "no-faces.jpg").read_bytes()
    cases: list[tuple[AnalyzeJob, type[Exception], str]] = [
        (job(b"not base64 !", b64=True), ImageDecodeError, "FailedOperation.ImageDecodeFailed"),
        (job(b"GIF89a not really"), ImageDecodeError, "FailedOperation.ImageDecodeFailed"),
        (job(tiny.getvalue()), ImageTooSmallError, "FailedOperation.ImageResolutionTooSmall"),
        (job(no_face), NoFaceError, "InvalidParameterValue.NoFaceInPhoto"),
    ]
    cases: list[tuple[AnalyzeJob, type[Exception], str]] = [
        (job(b"not base64 !", b64=True), ImageDecodeError, "FailedOperation.ImageDecodeFailed"),
        (job(b"GIF89a not really"), ImageDecodeError, "FailedOperation.ImageDecodeFailed"),
        (job(tiny.getvalue()), ImageTooSmallError, "FailedOperation.ImageResolutionTooSmall"),
        (job(no_face), NoFaceError, "InvalidParameterValue.NoFaceInPhoto"),
    ]

    async def scenario(pool: ProcessPool) -> None:
        for case, cls, code in cases:
            with pytest.raises(cls) as info:
                await pool.run(case)
            assert info.value.code == code
        assert pool.stats().restarts == 0

    with_pool(WorkerConfig(model_dir=model_dir), scenario)

    async def too_small(pool: ProcessPool) -> None:
        with pytest.raises(FaceTooSmallError) as info:
            await pool.run(JOB)
        assert info.value.code == "FailedOperation.FaceSizeTooSmall"
        assert "10000 px" in info.value.message

    with_pool(WorkerConfig(model_dir=model_dir, options=ServiceOptions(min_face_size=10_000)), too_small)


def test_a_failed_model_run_is_server_error_and_a_bug_internal_error(model_dir: Path) -> None:
    runtime = RuntimeError("Node number 3 (CONV_2D) failed to invoke.")
    for failure, cls, code in ((runtime, InferenceError, "FailedOperation.ServerError"),
                               (TypeError("a bug"), ApiError, "InternalError")):  # fmt: skip
        factory = functools.partial(failing_analyzer, model_dir, failure)

        async def scenario(pool: ProcessPool, cls: type[Exception] = cls, code: str = code) -> None:
            with pytest.raises(cls) as info:
                await pool.run(JOB)
            error = info.value
            assert getattr(error, "code", None) == code
            assert "Traceback" in str(error.__cause__)
            answer = json.loads(await pool.run(JOB))  # the same worker keeps serving
            assert len(answer["DenseFaceShapeSet"]) == 2
            assert pool.stats().restarts == 0

        with_pool(WorkerConfig(analyzer_factory=factory), scenario)


def test_a_worker_that_cannot_load_its_models_fails_the_start(tmp_path: Path) -> None:
    async def main() -> None:
        pool = ProcessPool(1, WorkerConfig(model_dir=tmp_path / "empty"))
        with pytest.raises(ModelsMissingError):
            await pool.start()
        assert pool.stats().alive == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    "fields", [{"ImageWidth": 3, "DenseFaceShapeSet": [{"X": 1, "Nose": [{"X": 2, "Y": 3}]}]}, {}]
)
def test_the_envelope_spliced_around_a_workers_json_is_the_envelope(fields: dict[str, Any]) -> None:
    request_id = 'a-"quoted"-id'
    raw = json.dumps(fields, separators=(",", ":")).encode()
    assert json.loads(success_envelope_json(raw, request_id)) == success_envelope(fields, request_id)
    with pytest.raises(ValueError, match="JSON object"):
        success_envelope_json(b"[1]", request_id)


def test_the_workers_response_json_is_json_dumps_of_the_fields(analyzer: Analyzer) -> None:
    """Written directly in the worker, byte for byte what json.dumps makes of the fields (two faces;
    faces cut by the frame, their points clipped)."""
    cut = io.BytesIO()
    with Image.open(io.BytesIO(TWO_PEOPLE)) as image:
        image.crop((120, 60, image.width - 150, image.height - 200)).save(cut, "JPEG")
    for data in (TWO_PEOPLE, cut.getvalue()):
        decoded = decode_bytes(data)
        faces = analyzer.analyze(decoded)
        assert faces
        fields = analyze_response(decoded.width, decoded.height, faces)
        expected = json.dumps(fields, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        assert analyze_response_json(decoded.width, decoded.height, faces) == expected
    assert '"Y":0}' in expected.decode()  # the cut photo has a face clipped at the top
    assert json.loads(analyze_response_json(64, 64, [])) == analyze_response(64, 64, [])
