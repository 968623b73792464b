"""Tencent Cloud API 3.0 answers, transport-neutral: :class:`ApiError`, localized messages and the
``{"Response": ...}`` envelopes.

Messages come from ``denseface/data/messages.json`` (``zh-CN`` and ``en-US`` per code). A template may
mention ``{detail}`` (a parameter name or value) and ``{implemented}`` (the actions this server
implements, from :data:`denseface.rpc.catalog.IMPLEMENTED_ACTIONS`).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from importlib import resources
from typing import Any

from denseface.errors import DensefaceError
from denseface.rpc.catalog import IMPLEMENTED_ACTIONS

LANGUAGES = ("zh-CN", "en-US")
DEFAULT_LANGUAGE = "zh-CN"
_MAX_DETAIL = 128


class ApiError(DensefaceError):
    """A Tencent error response: ``code`` plus an optional ``detail`` (a parameter name or value).

    ``message`` is the English text (for logs); :meth:`localized` renders it in the caller's language.
    ``language`` is the request's language as far as it was known when the error was raised.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        detail: str | None = None,
        language: str | None = None,
    ) -> None:
        if detail is not None and len(detail) > _MAX_DETAIL:
            detail = detail[:_MAX_DETAIL] + "…"
        self._explicit = message is not None
        super().__init__(message if message is not None else message_for(code, "en-US", detail))
        self.code = code
        self.detail = detail
        self.language = language

    def localized(self, language: str | None = None) -> str:
        """The message in ``language`` (default: the request's language, else zh-CN)."""
        if self._explicit:
            return self.message
        return message_for(self.code, language or self.language or DEFAULT_LANGUAGE, self.detail)

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, detail={self.detail!r})"


# ---------------------------------------------------------------------------------------------- messages
@functools.cache
def _messages() -> dict[str, dict[str, Any]]:
    text = resources.files("denseface").joinpath("data/messages.json").read_text(encoding="utf-8")
    table: dict[str, dict[str, Any]] = json.loads(text)
    return table


def normalize_language(value: str | None) -> str | None:
    """``zh-CN`` or ``en-US`` (any case), else ``None``."""
    if value is None:
        return None
    for language in LANGUAGES:
        if value.strip().lower() == language.lower():
            return language
    return None


def message_for(code: str, language: str, detail: str | None = None) -> str:
    """The error message for ``code`` in ``language`` (zh-CN if unknown), mentioning ``detail`` if given.

    Unknown codes fall back to their top-level code (``FailedOperation.X`` → ``FailedOperation``).
    """
    table = _messages()
    lang = normalize_language(language) or DEFAULT_LANGUAGE
    entry = table.get(code) or table.get(code.split(".", 1)[0]) or table["InternalError"]
    implemented = ", ".join(IMPLEMENTED_ACTIONS)
    if detail is None:
        return str(entry[lang]).replace("{implemented}", implemented)
    template = entry.get("with_detail", {}).get(lang)
    if template is None:
        return f"{str(entry[lang]).replace('{implemented}', implemented)} ({detail})"
    # `detail` is the caller's text: substituted last, so braces in it are never expanded
    return str(template).replace("{implemented}", implemented).replace("{detail}", detail)


# --------------------------------------------------------------------------------------------- envelopes
def new_request_id() -> str:
    """A fresh RequestId (uuid4)."""
    return str(uuid.uuid4())


def success_envelope(fields: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """``{"Response": {...fields, "RequestId": request_id}}``."""
    return {"Response": {**fields, "RequestId": request_id}}


def success_envelope_json(fields_json: bytes, request_id: str) -> bytes:
    """:func:`success_envelope` for fields already serialised as a JSON object (as a worker returns
    them): ``{"Response": {...fields, "RequestId": request_id}}`` as compact UTF-8 JSON, spliced
    without parsing the fields again."""
    fields = memoryview(fields_json)
    if not (fields_json[:1] == b"{" and fields_json[-1:] == b"}"):
        raise ValueError("the fields must be a JSON object")
    separator = b"," if fields_json.strip(b"{} \t\r\n") else b""
    request = json.dumps(request_id).encode("utf-8")
    return b"".join((b'{"Response":', fields[:-1], separator, b'"RequestId":', request, b"}}"))


def error_envelope(code: str, message: str, request_id: str) -> dict[str, Any]:
    """``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``."""
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}


def envelope_for_error(error: DensefaceError, request_id: str, language: str | None = None) -> dict[str, Any]:
    """The error envelope for any denseface error, its message in ``language``.

    :class:`ApiError` is localized from the table; other errors keep their own (English, actionable)
    message for en-US and use the table's text for zh-CN.
    """
    if isinstance(error, ApiError):
        message = error.localized(language)
    else:
        lang = normalize_language(language) or DEFAULT_LANGUAGE
        message = error.message if lang == "en-US" else message_for(error.code, lang)
    return error_envelope(error.code, message, request_id)


__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "ApiError",
    "envelope_for_error",
    "error_envelope",
    "message_for",
    "new_request_id",
    "normalize_language",
    "success_envelope",
    "success_envelope_json",
]
