"""The ``Image`` parameter: base64 decoding and Tencent's header-level image checks.

Both steps are cheap and run before any pixel is decoded.

``decode_base64_image``
    Strict standard base64 (RFC 4648 alphabet, correct ``=`` padding). ASCII whitespace anywhere is dropped
    first, and a ``data:image/<type>;base64,`` prefix (what a browser's ``canvas.toDataURL()`` produces) is
    tolerated: Tencent documents a bare base64 string, so accepting the prefix only widens what works. The
    length limit applies to the string as received (prefix and whitespace included) before decoding, so an
    oversized request costs no decoding work. Empty input is ``ImageEmptyError``.

``check_tencent_image``
    Opens the bytes with Pillow, which reads the header only (``Image.open`` is lazy; this module never calls
    ``load()``), and applies Tencent's rules: PNG, JPEG and BMP only; a JPEG's long side at most 4000 px,
    other formats' at most 2000 px; the short side at least 64 px. Sizes are measured after EXIF orientation:
    the EXIF block is parsed from the header bytes Pillow already holds (``info["exif"]``), so orientations
    5-8 swap width and height without decoding anything. A PNG whose ``eXIf`` chunk comes after the pixel
    data is measured unrotated, because reading that chunk would mean decoding the image.

    A multi-picture JPEG (MPO, common from phone cameras) is a JPEG. Pillow's decompression-bomb guard
    (``DecompressionBombError``, or ``DecompressionBombWarning`` when warnings are errors) becomes
    ``ImageResolutionExceedError``; any other failure to parse becomes ``ImageDecodeError``. Nothing else
    escapes.

    A file whose header is intact but whose body is truncated passes this check; it fails later, when the
    engine decodes it.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from denseface.errors import (
    ImageDecodeError,
    ImageEmptyError,
    ImageResolutionExceedError,
    ImageSizeExceedError,
    ImageTooSmallError,
    UnsupportedFormatError,
)

logger = logging.getLogger(__name__)

MIB = 1024 * 1024

#: EXIF tag 0x0112; values 5-8 are the orientations that transpose the image.
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})

#: Pillow format name -> the name we report. MPO is a JPEG with extra pictures appended.
_ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "BMP": "BMP"}

_DATA_URI_PREFIX = re.compile(r"\Adata:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
_BASE64_CHARS = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Every size limit of the image input, in one place.

    ``max_image_base64`` counts characters of the ``Image`` string; ``max_download`` counts bytes fetched
    from a ``Url``; the ``*_side`` values are pixels, measured after EXIF orientation."""

    max_image_base64: int = 5 * MIB
    max_download: int = 5 * MIB
    jpeg_max_side: int = 4000
    other_max_side: int = 2000
    min_side: int = 64

    def __post_init__(self) -> None:
        for name in ("max_image_base64", "max_download", "jpeg_max_side", "other_max_side", "min_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ImageLimits.{name} must be a positive integer, got {value!r}")
        if self.min_side > min(self.jpeg_max_side, self.other_max_side):
            raise ValueError("ImageLimits.min_side must not exceed the maximum side limits")


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """Header facts: ``format`` is ``"PNG"``, ``"JPEG"`` or ``"BMP"``; sizes follow EXIF orientation."""

    format: str
    width: int
    height: int


def decode_base64_image(b64: str, limits: ImageLimits = DEFAULT_LIMITS) -> bytes:
    """Decode the ``Image`` parameter.

    Raises ``ImageEmptyError`` for an empty (or whitespace-only) string, ``ImageSizeExceedError`` when the
    string is longer than ``limits.max_image_base64`` characters, and ``ImageDecodeError`` when it is not
    valid base64.
    """
    if len(b64) > limits.max_image_base64:
        raise ImageSizeExceedError(
            f"the Image parameter is {len(b64)} characters of base64; the limit is {limits.max_image_base64}"
        )
    text = _DATA_URI_PREFIX.sub("", b64, count=1)
    if any(c in text for c in " \t\r\n\f\v"):  # the regex costs ms on a clean 5 MB string
        text = _WHITESPACE.sub("", text)
    if not text:
        raise ImageEmptyError("the Image parameter is empty; send base64 image data or a Url")
    if len(text) % 4 != 0 or not _BASE64_CHARS.match(text):
        raise ImageDecodeError(
            "the Image parameter is not valid base64: "
            "use the standard alphabet (A-Z a-z 0-9 + /) with '=' padding"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError(f"the Image parameter is not valid base64: {exc}") from exc
    if not data:
        raise ImageEmptyError("the Image parameter decodes to no bytes; send base64 image data or a Url")
    return data


def check_tencent_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> ImageInfo:
    """Check format and size from the header of ``data`` without decoding pixels.

    Raises ``ImageDecodeError`` (not an image, unreadable header), ``UnsupportedFormatError`` (an image, but
    not PNG/JPEG/BMP), ``ImageResolutionExceedError`` (too large, or a decompression bomb) or
    ``ImageTooSmallError``.
    """
    if not data:
        raise ImageDecodeError("the image is empty (0 bytes)")
    pil_format, width, height, exif_bytes = _read_header(data)

    reported = _ACCEPTED_FORMATS.get(pil_format)
    if reported is None:
        raise UnsupportedFormatError(f"{pil_format} images are not supported; send PNG, JPEG or BMP")

    if _orientation(exif_bytes) in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width

    long_side, short_side = max(width, height), min(width, height)
    max_side = limits.jpeg_max_side if reported == "JPEG" else limits.other_max_side
    if long_side > max_side:
        raise ImageResolutionExceedError(
            f"the {reported} image is {width}x{height}; its long side must be at most {max_side} px"
        )
    if short_side < limits.min_side:
        raise ImageTooSmallError(
            f"the image is {width}x{height}; its short side must be at least {limits.min_side} px"
        )
    return ImageInfo(format=reported, width=width, height=height)


def _read_header(data: bytes) -> tuple[str, int, int, bytes | None]:
    """Open ``data`` lazily; return Pillow's format name, the stored size and the raw EXIF block, if any."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            pil_format = img.format or ""
            width, height = img.size
            exif = img.info.get("exif")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageResolutionExceedError(f"the image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("the data is not a recognisable image") from exc
    except Exception as exc:
        # Pillow's header parsers raise a wide mix (OSError, SyntaxError, ValueError, struct.error, EOFError,
        # IndexError, ...) on hostile input; at this trust boundary every one of them means "cannot decode".
        logger.debug("image header could not be parsed", exc_info=True)
        raise ImageDecodeError(f"the image header could not be read ({type(exc).__name__})") from exc
    if not pil_format or width <= 0 or height <= 0:
        raise ImageDecodeError(f"the image header is invalid ({pil_format or '?'}, {width}x{height})")
    return pil_format, width, height, exif if isinstance(exif, bytes) else None


def _orientation(exif_bytes: bytes | None) -> int:
    """EXIF orientation (1-8) parsed from the raw block; 1 when absent or unreadable."""
    if not exif_bytes:
        return 1
    try:
        exif = Image.Exif()
        exif.load(exif_bytes)
        value = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:
        # A broken EXIF block does not make the picture unusable; treat it as upright, as decoders do.
        logger.debug("unreadable EXIF block ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


__all__ = [
    "DEFAULT_LIMITS",
    "ImageInfo",
    "ImageLimits",
    "check_tencent_image",
    "decode_base64_image",
]
