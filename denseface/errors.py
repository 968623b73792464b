"""Every error denseface raises, in one hierarchy.

Each class carries the Tencent Cloud error ``code`` it maps to, so the HTTP layer turns a library
error into the right ``{"Error": {"Code", "Message"}}`` envelope without a second table::

    DensefaceError
    ├── ModelsMissingError          weights not fetched / corrupt          InternalError
    ├── ImageError
    │   ├── ImageDecodeError        not an image, truncated, corrupt       FailedOperation.ImageDecodeFailed
    │   ├── UnsupportedFormatError  a format the caller does not accept    FailedOperation.ImageDecodeFailed
    │   ├── ImageSizeExceedError    encoded bytes over the limit     FailedOperation.ImageSizeExceed
    │   ├── ImageResolutionExceedError  too many pixels (header)     FailedOperation.ImageResolutionExceed
    │   ├── ImageTooSmallError      short side under the minimum     FailedOperation.ImageResolutionTooSmall
    │   ├── ImageEmptyError         neither image nor URL given            InvalidParameterValue.ImageEmpty
    │   ├── UrlIllegalError         URL malformed / scheme not allowed     InvalidParameterValue.UrlIllegal
    │   └── ImageDownloadError      URL could not be fetched safely        FailedOperation.ImageDownloadError
    ├── NoFaceError                 no face in the photo                   InvalidParameterValue.NoFaceInPhoto
    ├── FaceTooSmallError           only faces below the minimum size      FailedOperation.FaceSizeTooSmall
    ├── InferenceError              a model run failed (worth retrying)    FailedOperation.ServerError
    └── VideoReadError              a video that cannot be opened or ends early (the CLI; no Tencent action)

``denseface.analyze`` returns an empty list when it finds no face; ``NoFaceError`` and
``FaceTooSmallError`` are raised by callers that need Tencent's semantics (the HTTP service).
"""

from __future__ import annotations


class DensefaceError(Exception):
    """Base class. ``code`` is the Tencent Cloud error code this error maps to."""

    code: str = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelsMissingError(DensefaceError):
    """The model weights are not in the cache, or their sha256 does not match."""

    code = "InternalError"


class ImageError(DensefaceError):
    """Something is wrong with the input image."""

    code = "FailedOperation.ImageDecodeFailed"


class ImageDecodeError(ImageError):
    code = "FailedOperation.ImageDecodeFailed"


class UnsupportedFormatError(ImageError):
    code = "FailedOperation.ImageDecodeFailed"


class ImageSizeExceedError(ImageError):
    code = "FailedOperation.ImageSizeExceed"


class ImageResolutionExceedError(ImageError):
    code = "FailedOperation.ImageResolutionExceed"


class ImageTooSmallError(ImageError):
    code = "FailedOperation.ImageResolutionTooSmall"


class ImageEmptyError(ImageError):
    code = "InvalidParameterValue.ImageEmpty"


class UrlIllegalError(ImageError):
    code = "InvalidParameterValue.UrlIllegal"


class ImageDownloadError(ImageError):
    code = "FailedOperation.ImageDownloadError"


class NoFaceError(DensefaceError):
    code = "InvalidParameterValue.NoFaceInPhoto"


class FaceTooSmallError(DensefaceError):
    code = "FailedOperation.FaceSizeTooSmall"


class InferenceError(DensefaceError):
    """A model run failed inside the runtime (LiteRT's ``invoke``, ONNX Runtime's ``run``): not the
    photo's fault and worth retrying. ``__cause__`` is the runtime's own exception."""

    code = "FailedOperation.ServerError"


class VideoReadError(DensefaceError):
    """A video file that cannot be opened, has no readable frame, or ends before the frames it
    declares (truncated or damaged). ``frames_read``: frames decoded before the problem."""

    code = "FailedOperation.ImageDecodeFailed"

    def __init__(self, message: str, frames_read: int = 0) -> None:
        super().__init__(message)
        self.frames_read = frames_read


__all__ = [
    "DensefaceError",
    "FaceTooSmallError",
    "ImageDecodeError",
    "ImageDownloadError",
    "ImageEmptyError",
    "ImageError",
    "ImageResolutionExceedError",
    "ImageSizeExceedError",
    "ImageTooSmallError",
    "InferenceError",
    "ModelsMissingError",
    "NoFaceError",
    "UnsupportedFormatError",
    "UrlIllegalError",
    "VideoReadError",
]
