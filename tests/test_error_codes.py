"""docs/protocol.md's error tables list every code Tencent documents for AnalyzeDenseLandmarks and every code
the server can answer, and nothing else; the README names each of them; each code has its own messages in
both languages."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from denseface import errors
from denseface.rpc import envelope
from denseface.rpc.protocol import PROTOCOL_ERROR_CODES
from denseface.server.app import ERROR_CODES
from denseface.server.settings import Settings
from tests.conftest import ROOT

#: Tencent's error list for AnalyzeDenseLandmarks: the "可能返回的错误码" comment of the official Go SDK's
#: iai/v20200303 client.go (24 codes, "UnknowMethod" sic).
SEED_CODES = frozenset(
    {
        "FailedOperation.FaceSizeTooSmall",
        "FailedOperation.ImageDecodeFailed",
        "FailedOperation.ImageDownloadError",
        "FailedOperation.ImageResolutionExceed",
        "FailedOperation.ImageResolutionTooSmall",
        "FailedOperation.ImageSizeExceed",
        "FailedOperation.RequestTimeout",
        "FailedOperation.ServerError",
        "InternalError",
        "InvalidParameter.InvalidParameter",
        "InvalidParameterValue.FaceModelVersionIllegal",
        "InvalidParameterValue.ImageEmpty",
        "InvalidParameterValue.NoFaceInPhoto",
        "InvalidParameterValue.UrlIllegal",
        "RequestLimitExceeded",
        "ResourceUnavailable.InArrears",
        "ResourceUnavailable.LowBalance",
        "ResourceUnavailable.NotExist",
        "ResourceUnavailable.NotReady",
        "ResourceUnavailable.Recover",
        "ResourceUnavailable.StopUsing",
        "ResourceUnavailable.UnknownStatus",
        "ResourcesSoldOut.ChargeStatusException",
        "UnsupportedOperation.UnknowMethod",
    }
)


def readme_rows() -> dict[str, str]:
    """``code → when`` for every row of the tables under docs/protocol.md's "## Limits and error codes"."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text.split("## Limits and error codes", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([A-Za-z.]+)` \| (.+) \|", line.strip())
        if match is None:
            continue
        code, when = match.groups()
        assert code not in rows, f"{code} is listed twice"
        rows[code] = when
    return rows


def _error_classes(cls: type[errors.DensefaceError]) -> Iterator[type[errors.DensefaceError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _error_classes(sub)


def test_the_seed_list_has_24_codes() -> None:
    assert len(SEED_CODES) == 24


def test_readme_lists_every_documented_and_every_returned_code() -> None:
    rows = readme_rows()
    assert not SEED_CODES - set(rows), "Tencent's codes missing from the README"
    assert not ERROR_CODES - set(rows), "codes the server answers missing from the README"
    assert not set(rows) - SEED_CODES - ERROR_CODES, "README rows for codes nobody documents or returns"


def test_the_readme_names_every_code() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([A-Z][A-Za-z]+(?:\.[A-Za-z]+)?)`", text.split("## Error codes", 1)[1]))
    assert not (SEED_CODES | ERROR_CODES) - named, "codes missing from README's error codes"


def test_every_documented_code_is_returned() -> None:
    # the eight account and billing codes too (denseface.rpc.accounts.gate): none is only reserved
    assert SEED_CODES <= ERROR_CODES
    assert not [code for code, when in readme_rows().items() if "not returned" in when]


def test_error_codes_cover_every_raiser() -> None:
    assert PROTOCOL_ERROR_CODES <= ERROR_CODES
    assert {cls.code for cls in _error_classes(errors.DensefaceError)} <= ERROR_CODES


@pytest.mark.parametrize("code", sorted(SEED_CODES | ERROR_CODES))
def test_every_code_has_its_own_messages(code: str) -> None:
    entry = envelope._messages().get(code)
    assert entry is not None, f"{code} has no entry in denseface/data/messages.json"
    assert entry["en-US"].strip()
    assert entry["zh-CN"].strip()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in entry["zh-CN"])


def test_readme_states_the_default_rate() -> None:
    assert Settings.from_env({}).qps == 50
    assert "default 50 req/s" in readme_rows()["RequestLimitExceeded"]
