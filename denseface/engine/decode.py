"""Image input for the library: a path, bytes, a PIL image or an RGB numpy array → RGB uint8 array.

EXIF orientation is applied, so every coordinate denseface returns is in the oriented frame.
Grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and float images are converted.
Format rules of the Tencent service (PNG/JPEG/BMP only, resolution limits) live in ``rpc``; the
library accepts whatever Pillow decodes.

Guards before any pixel is decoded: the pixel count (:data:`MAX_PIXELS`), and for a JPEG the number of
scans. A progressive JPEG's decoder walks every block of the image once per scan, however small the scan,
so a file of a few hundred KB that repeats one 12-byte scan 60 000 times keeps libjpeg busy for tens of
seconds. Ordinary photos have 1 (baseline) to about 10–20 scans (libjpeg's and mozjpeg's progressive
scripts): more than :data:`MAX_JPEG_SCANS`, or scans × pixels over :data:`MAX_SCAN_PIXELS` (the decode
budget: about 0.1–0.2 s of libjpeg work on one core), is refused as a decode failure.
"""

from __future__ import annotations

import inspect
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from denseface.errors import ImageDecodeError, ImageResolutionExceedError

ImageInput = Union[str, os.PathLike[str], bytes, bytearray, memoryview, Image.Image, npt.NDArray[np.generic]]  # noqa: UP007
RGBArray = npt.NDArray[np.uint8]

EXIF_ORIENTATION = 0x0112
# Pillow's own bomb guard, made an error instead of a warning (≈ 8k × 8k).
MAX_PIXELS = 64_000_000
#: SOS markers (scans) a JPEG may have; ordinary photos have fewer than 20
MAX_JPEG_SCANS = 64
#: the decode budget: scans × pixels (a 10-scan progressive photo of up to 64 MP fits)
MAX_SCAN_PIXELS = 1_200_000_000
_SOS = b"\xff\xda"  # start of scan; entropy-coded data never holds it (0xFF there is 0xFF00 or RSTn)


@dataclass(frozen=True)
class Decoded:
    rgb: RGBArray  # (H, W, 3) uint8, C-contiguous
    format: str | None  # Pillow's format name ("JPEG", "PNG", ...) or None for arrays

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def image_extensions() -> frozenset[str]:
    """The file extensions (lower case, with the dot) of every format Pillow decodes here: what
    :func:`load` takes. Formats Pillow only identifies (stubs, MPEG) or decodes with an outside
    program (EPS: Ghostscript) are left out."""
    Image.init()
    found = {".mpo"}  # MPO is opened through the JPEG plugin
    for extension, name in Image.registered_extensions().items():
        opener = Image.OPEN.get(name, (None,))[0]
        if opener is None or name in ("MPEG", "EPS"):
            continue
        if inspect.isclass(opener) and issubclass(opener, ImageFile.StubImageFile):
            continue
        found.add(extension.lower())
    return frozenset(found)


def load(image: ImageInput) -> Decoded:
    """Decode any supported input into an oriented RGB uint8 array."""
    if isinstance(image, np.ndarray):
        return Decoded(_array_to_rgb(image), None)
    if isinstance(image, Image.Image):
        return Decoded(pil_to_rgb(image), image.format)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(image))
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return decode_bytes(data)
    raise TypeError(f"unsupported image input of type {type(image).__name__}")


def decode_bytes(data: bytes) -> Decoded:
    if not data:
        raise ImageDecodeError("the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            # checked before any pixel is decoded; below Pillow's own bomb warning (89 MP)
            if img.width * img.height > MAX_PIXELS:
                raise ImageResolutionExceedError(
                    f"image of {img.width}x{img.height} pixels exceeds the {MAX_PIXELS} pixel limit"
                )
            fmt = img.format
            if fmt == "JPEG":
                check_jpeg_scans(data, img.width * img.height)
            fast = _decode_jpeg_fast(data, img) if fmt == "JPEG" else None
            if fast is not None:
                return Decoded(fast, fmt)
            img.load()
            rgb = pil_to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise ImageResolutionExceedError(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("the data is not an image in a format that can be decoded") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"the image is corrupt or truncated: {exc}") from exc
    return Decoded(rgb, fmt)


def check_jpeg_scans(data: bytes, pixels: int) -> int:
    """The JPEG's number of scans; :class:`ImageDecodeError` if over :data:`MAX_JPEG_SCANS` or, with
    ``pixels``, over the decode budget :data:`MAX_SCAN_PIXELS`. (An EXIF thumbnail's scans count too:
    a thumbnail has 1 to 10.)"""
    scans = data.count(_SOS)
    if scans > MAX_JPEG_SCANS:
        raise ImageDecodeError(
            f"the JPEG has {scans} scans (at most {MAX_JPEG_SCANS} are decoded; photos have fewer than 20)"
        )
    if scans * pixels > MAX_SCAN_PIXELS:
        raise ImageDecodeError(
            f"the JPEG's {scans} scans of {pixels} pixels exceed the decode budget "
            f"({MAX_SCAN_PIXELS} scan-pixels); save it as a baseline JPEG"
        )
    return scans


def _decode_jpeg_fast(data: bytes, header: Image.Image) -> RGBArray | None:
    """OpenCV's JPEG decoder writes straight into a numpy array (no Pillow → bytes → array copies)
    and applies EXIF orientation itself. Used only for complete baseline 3-channel JPEGs: anything
    else (truncated data without its end marker, CMYK, grayscale) goes through Pillow, whose errors
    are stricter."""
    if header.mode != "RGB" or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
    if rgb is None:
        return None
    expected = (header.height, header.width)
    if header.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
        expected = expected[::-1]
    if rgb.shape[:2] != expected:  # a decoder disagreement: trust Pillow
        return None
    return np.asarray(rgb, dtype=np.uint8)


def pil_to_rgb(img: Image.Image) -> RGBArray:
    """Oriented RGB copy of a PIL image, whatever its mode (one copy for the common RGB case)."""
    oriented = img
    if img.getexif().get(EXIF_ORIENTATION, 1) != 1:
        transposed = ImageOps.exif_transpose(img)
        oriented = transposed if transposed is not None else img
    mode = oriented.mode
    if mode == "RGB":
        return np.asarray(oriented, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(oriented, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in oriented.info):
        rgba = oriented.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        oriented = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(oriented.convert("RGB"), dtype=np.uint8))


def _array_to_rgb(array: npt.NDArray[np.generic]) -> RGBArray:
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageDecodeError(f"expected an (H, W, 3) RGB array, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
            arr = np.clip(np.nan_to_num(arr.astype(np.float64)) * scale + 0.5, 0, 255)
        elif arr.dtype == np.uint16:
            arr = arr.astype(np.float64) / 257.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageDecodeError("the image has no pixels")
    return np.ascontiguousarray(arr)
