"""``denseface.rpc.image_input``: base64 decoding and header-level checks on real photos."""

from __future__ import annotations

import base64
import dataclasses
import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from denseface.errors import (
    ImageDecodeError,
    ImageEmptyError,
    ImageError,
    ImageResolutionExceedError,
    ImageSizeExceedError,
    ImageTooSmallError,
    UnsupportedFormatError,
)
from denseface.rpc.image_input import ImageInfo, ImageLimits, check_tencent_image, decode_base64_image

DATASETS = Path(__file__).parents[1] / ".." / "shared" / "datasets"
PNG_PHOTO = DATASETS / "landmarks" / "images" / "eos_lfpw__image_0001.png"  # 412x600
JPEG_PHOTO = DATASETS / "robustness" / "face_recognition" / "obama-720p.jpg"  # 1280x720
WEBP_PHOTO = DATASETS / "robustness" / "ultralight" / "masked" / "img7.webp"

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(JPEG_PHOTO) as img:
        rgb: Image.Image = img.convert("RGB")
    return rgb


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def blank(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (128, 96, 64))


# --- accepted formats -------------------------------------------------------------------------------------


def test_real_png_is_accepted() -> None:
    assert check_tencent_image(PNG_PHOTO.read_bytes()) == ImageInfo("PNG", 412, 600)


def test_real_jpeg_is_accepted() -> None:
    assert check_tencent_image(JPEG_PHOTO.read_bytes()) == ImageInfo("JPEG", 1280, 720)


def test_bmp_made_from_a_photo_is_accepted(photo: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "photo.bmp"
    photo.resize((640, 360)).save(path, format="BMP")
    assert check_tencent_image(path.read_bytes()) == ImageInfo("BMP", 640, 360)


def test_mpo_counts_as_jpeg(photo: Image.Image) -> None:
    small = photo.resize((320, 180))
    data = encode(small, "MPO", save_all=True, append_images=[small.rotate(180)])
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "MPO"
    assert check_tencent_image(data) == ImageInfo("JPEG", 320, 180)


def test_header_check_never_decodes_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_load)
    assert check_tencent_image(JPEG_PHOTO.read_bytes()).format == "JPEG"
    assert check_tencent_image(PNG_PHOTO.read_bytes()).format == "PNG"


# --- refused formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "params"), [("GIF", {}), ("WEBP", {"quality": 80}), ("TIFF", {})])
def test_other_image_formats_are_unsupported(
    photo: Image.Image, tmp_path: Path, fmt: str, params: dict[str, object]
) -> None:
    path = tmp_path / f"photo.{fmt.lower()}"
    photo.resize((320, 180)).save(path, format=fmt, **params)
    with pytest.raises(UnsupportedFormatError, match=fmt):
        check_tencent_image(path.read_bytes())


def test_shared_webp_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        check_tencent_image(WEBP_PHOTO.read_bytes())
    assert info.value.code == "FailedOperation.ImageDecodeFailed"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world",
        bytes(random.Random(7).randrange(256) for _ in range(4096)),
        b"<html><body>not found</body></html>",
        b"%PDF-1.4\n",
    ],
    ids=["empty", "text", "random", "html", "pdf-magic"],
)
def test_non_images_fail_to_decode(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        check_tencent_image(data)


@pytest.mark.parametrize("keep", [2, 10, 30, 100])
def test_jpeg_truncated_inside_the_header_fails_to_decode(keep: int) -> None:
    with pytest.raises(ImageDecodeError):
        check_tencent_image(JPEG_PHOTO.read_bytes()[:keep])


@pytest.mark.parametrize("keep", [8, 16, 24])
def test_png_truncated_inside_the_header_fails_to_decode(keep: int) -> None:
    with pytest.raises(ImageDecodeError):
        check_tencent_image(PNG_PHOTO.read_bytes()[:keep])


def test_body_truncated_jpeg_passes_the_header_check() -> None:
    # Documented behaviour: only the header is read here; the engine's decoder rejects the broken body later.
    data = JPEG_PHOTO.read_bytes()
    assert check_tencent_image(data[: len(data) // 2]) == ImageInfo("JPEG", 1280, 720)


# --- EXIF orientation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [(1, (320, 180)), (3, (320, 180)), (5, (180, 320)), (6, (180, 320)), (8, (180, 320))],
)
def test_exif_orientation_swaps_dimensions(
    photo: Image.Image, orientation: int, expected: tuple[int, int]
) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    data = encode(photo.resize((320, 180)), "JPEG", exif=exif.tobytes())
    info = check_tencent_image(data)
    assert (info.width, info.height) == expected


def test_size_limits_apply_after_orientation(photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    # Stored 100x63 is too small either way; stored 4001x100 rotated is still too long.
    with pytest.raises(ImageTooSmallError, match="63x100"):
        check_tencent_image(encode(blank(100, 63), "JPEG", exif=exif.tobytes()))
    with pytest.raises(ImageResolutionExceedError, match="100x4001"):
        check_tencent_image(encode(blank(4001, 100), "JPEG", exif=exif.tobytes()))


def test_garbage_exif_is_ignored(photo: Image.Image) -> None:
    data = encode(photo.resize((320, 180)), "JPEG", exif=b"Exif\x00\x00" + b"\xff" * 40)
    assert check_tencent_image(data) == ImageInfo("JPEG", 320, 180)


# --- resolution limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "size", "error"),
    [
        ("JPEG", (4000, 64), None),
        ("JPEG", (4001, 100), ImageResolutionExceedError),
        ("JPEG", (100, 4001), ImageResolutionExceedError),
        ("PNG", (2000, 64), None),
        ("PNG", (2001, 100), ImageResolutionExceedError),
        ("BMP", (2001, 100), ImageResolutionExceedError),
        ("PNG", (64, 64), None),
        ("PNG", (63, 500), ImageTooSmallError),
        ("JPEG", (500, 63), ImageTooSmallError),
        ("BMP", (64, 63), ImageTooSmallError),
    ],
)
def test_resolution_limits(fmt: str, size: tuple[int, int], error: type[ImageError] | None) -> None:
    data = encode(blank(*size), fmt)
    if error is None:
        assert check_tencent_image(data) == ImageInfo(fmt, *size)
    else:
        with pytest.raises(error):
            check_tencent_image(data)


def test_custom_limits() -> None:
    limits = ImageLimits(other_max_side=500, min_side=200)
    with pytest.raises(ImageResolutionExceedError):
        check_tencent_image(PNG_PHOTO.read_bytes(), limits)
    with pytest.raises(ImageTooSmallError):
        check_tencent_image(encode(blank(300, 199), "PNG"), limits)


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR (with a valid CRC) claims another size."""
    data = bytearray(encode(blank(1, 1), "PNG"))
    ihdr = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


@pytest.mark.parametrize("side", [20_000, 60_000])
def test_decompression_bomb_is_a_resolution_error(side: int) -> None:
    with pytest.raises(ImageResolutionExceedError):
        check_tencent_image(_png_claiming(side, side))


def test_decompression_bomb_warning_as_error_is_a_resolution_error() -> None:
    # 10000x10000 is past MAX_IMAGE_PIXELS but under twice it: Pillow only warns, unless warnings are errors.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageResolutionExceedError):
            check_tencent_image(_png_claiming(10_000, 10_000))


# --- base64 -----------------------------------------------------------------------------------------------


def test_base64_round_trip() -> None:
    raw = JPEG_PHOTO.read_bytes()
    assert decode_base64_image(base64.b64encode(raw).decode()) == raw


def test_base64_tolerates_line_breaks_and_spaces() -> None:
    raw = PNG_PHOTO.read_bytes()
    wrapped = base64.encodebytes(raw).decode().replace("\n", "\r\n  ")
    assert decode_base64_image(wrapped) == raw


@pytest.mark.parametrize("prefix", ["data:image/png;base64,", "DATA:image/jpeg;BASE64,"])
def test_base64_tolerates_a_data_uri_prefix(prefix: str) -> None:
    assert decode_base64_image(prefix + base64.b64encode(b"\x89PNG....").decode()) == b"\x89PNG...."


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        "QUJD*",
        "QUJDRA",  # missing padding
        "QUJDRA=",  # wrong padding
        "====",
        "QQ==QUJD",  # data after padding
        "-_-_",  # URL-safe alphabet
        "data:text/plain;base64,QUJD",  # a data URI that is not an image
        "QUJDRA==\x00",
        "QUJDäöü=",
    ],
)
def test_bad_base64_fails_to_decode(text: str) -> None:
    with pytest.raises(ImageDecodeError):
        decode_base64_image(text)


@pytest.mark.parametrize("text", ["", "   ", "\r\n\t", "data:image/png;base64,"])
def test_empty_base64_is_image_empty(text: str) -> None:
    with pytest.raises(ImageEmptyError) as info:
        decode_base64_image(text)
    assert info.value.code == "InvalidParameterValue.ImageEmpty"


def test_base64_over_5_mib_is_refused_before_decoding() -> None:
    # Invalid characters prove the length is checked first: no decoding error is reported.
    with pytest.raises(ImageSizeExceedError) as info:
        decode_base64_image("!" * (5 * 1024 * 1024 + 1))
    assert info.value.code == "FailedOperation.ImageSizeExceed"


def test_base64_of_exactly_5_mib_is_accepted() -> None:
    assert len(decode_base64_image("A" * (5 * 1024 * 1024))) == 5 * 1024 * 1024 // 4 * 3


def test_base64_limit_is_configurable() -> None:
    with pytest.raises(ImageSizeExceedError):
        decode_base64_image("QUJD" * 10, ImageLimits(max_image_base64=39))


# --- ImageLimits ------------------------------------------------------------------------------------------


def test_limits_defaults_and_immutability() -> None:
    limits = ImageLimits()
    assert (limits.max_image_base64, limits.max_download) == (5 * 1024 * 1024, 5 * 1024 * 1024)
    assert (limits.jpeg_max_side, limits.other_max_side, limits.min_side) == (4000, 2000, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.min_side = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs", [{"min_side": 0}, {"max_download": -1}, {"jpeg_max_side": 1.5}, {"min_side": 3000}]
)
def test_limits_reject_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="ImageLimits"):
        ImageLimits(**kwargs)  # type: ignore[arg-type]


# --- property test ----------------------------------------------------------------------------------------

_PREFIXES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00"]
_SEEDS = [JPEG_PHOTO.read_bytes()[:2048], PNG_PHOTO.read_bytes()[:2048], encode(blank(70, 70), "BMP")[:512]]


@st.composite
def _mutated_seed(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


_ANY_BYTES = st.one_of(
    st.binary(max_size=2048),
    st.tuples(st.sampled_from(_PREFIXES), st.binary(max_size=512)).map(lambda parts: parts[0] + parts[1]),
    _mutated_seed(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ANY_BYTES)
def test_arbitrary_bytes_only_raise_image_errors(data: bytes) -> None:
    try:
        info = check_tencent_image(data)
    except ImageError:
        return
    assert info.format in {"PNG", "JPEG", "BMP"}
    assert min(info.width, info.height) >= 64
