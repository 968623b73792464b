"""AnalyzeDenseLandmarks parameter validation (JSON from TC3 POST, strings from GET and v1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from denseface.rpc.actions.common import ANALYZE_PARAMS, AnalyzeParams, parse_analyze_params
from denseface.rpc.protocol import ApiError

IMAGE = "iVBORw0KGgo="
URL = "https://example.com/face.jpg"


def outcome(params: dict[str, Any], *, from_query: bool) -> AnalyzeParams | ApiError:
    try:
        return parse_analyze_params(params, from_query=from_query)
    except ApiError as error:
        return error


def code_of(params: dict[str, Any], *, from_query: bool) -> str:
    with pytest.raises(ApiError) as info:
        parse_analyze_params(params, from_query=from_query)
    return info.value.code


def test_defaults_json() -> None:
    assert parse_analyze_params({"Image": IMAGE}, from_query=False) == AnalyzeParams(
        mode=0, image_b64=IMAGE, url=None, need_rotate=False, face_model_version="3.0"
    )


def test_all_fields_json() -> None:
    params = {"Mode": 1, "Image": IMAGE, "FaceModelVersion": "3.0", "NeedRotateDetection": 1}
    assert parse_analyze_params(params, from_query=False) == AnalyzeParams(1, IMAGE, None, True, "3.0")


def test_all_fields_query_strings() -> None:
    params = {"Mode": "1", "Url": URL, "FaceModelVersion": "3.0", "NeedRotateDetection": "0"}
    assert parse_analyze_params(params, from_query=True) == AnalyzeParams(1, None, URL, False, "3.0")


def test_url_wins_over_image() -> None:
    result = parse_analyze_params({"Image": IMAGE, "Url": URL}, from_query=False)
    assert result.url == URL
    assert result.image_b64 is None


def test_blank_url_falls_back_to_image() -> None:
    result = parse_analyze_params({"Image": IMAGE, "Url": "  "}, from_query=False)
    assert result.image_b64 == IMAGE
    assert result.url is None


def test_null_and_empty_mean_absent() -> None:
    params = {
        "Mode": None,
        "Image": IMAGE,
        "Url": None,
        "FaceModelVersion": None,
        "NeedRotateDetection": None,
    }
    assert parse_analyze_params(params, from_query=False) == AnalyzeParams(0, IMAGE, None, False, "3.0")
    assert parse_analyze_params(
        {"Image": IMAGE, "FaceModelVersion": ""}, from_query=True
    ).face_model_version == ("3.0")


@pytest.mark.parametrize("name", ["Action", "mode", "Images", "Region", "Foo.0"])
@pytest.mark.parametrize("from_query", [True, False])
def test_unknown_parameter(name: str, from_query: bool) -> None:
    with pytest.raises(ApiError) as info:
        parse_analyze_params({"Image": IMAGE, name: "1"}, from_query=from_query)
    assert info.value.code == "UnknownParameter"
    assert info.value.detail == name
    assert name in info.value.message


@pytest.mark.parametrize(
    "params",
    [
        {"Mode": "1"},
        {"Mode": True},
        {"Mode": 1.0},
        {"Mode": [1]},
        {"NeedRotateDetection": False},
        {"NeedRotateDetection": "0"},
        {"Image": 5},
        {"Url": ["x"]},
        {"FaceModelVersion": 3.0},
    ],
)
def test_json_type_errors(params: dict[str, Any]) -> None:
    """A parameter of the wrong type is iai's InvalidParameter.InvalidParameter (the request's own
    format, checked by the protocol layer, stays plain InvalidParameter)."""
    assert code_of({"Image": IMAGE, **params}, from_query=False) == "InvalidParameter.InvalidParameter"


@pytest.mark.parametrize(
    "params",
    [
        {"Mode": "one"},
        {"Mode": ""},
        {"Mode": "1.0"},
        {"Mode": " 1"},
        {"Mode": "0x1"},
        {"NeedRotateDetection": "yes"},
    ],
)
def test_query_type_errors(params: dict[str, Any]) -> None:
    assert code_of({"Image": IMAGE, **params}, from_query=True) == "InvalidParameter.InvalidParameter"


@pytest.mark.parametrize(
    ("params", "from_query"),
    [
        ({"Mode": 2}, False),
        ({"Mode": -1}, False),
        ({"Mode": "5"}, True),
        ({"Mode": "-1"}, True),
        ({"NeedRotateDetection": 2}, False),
        ({"NeedRotateDetection": "7"}, True),
    ],
)
def test_out_of_range_values(params: dict[str, Any], from_query: bool) -> None:
    assert code_of({"Image": IMAGE, **params}, from_query=from_query) == "InvalidParameterValue"


@pytest.mark.parametrize("version", ["2.0", "3", "4.0", "3.0 "])
def test_face_model_version_illegal(version: str) -> None:
    code = code_of({"Image": IMAGE, "FaceModelVersion": version}, from_query=False)
    assert code == "InvalidParameterValue.FaceModelVersionIllegal"


@pytest.mark.parametrize("params", [{}, {"Image": ""}, {"Url": ""}, {"Image": "", "Url": " "}, {"Mode": 1}])
@pytest.mark.parametrize("from_query", [True, False])
def test_image_empty(params: dict[str, Any], from_query: bool) -> None:
    if from_query:
        params = {k: str(v) for k, v in params.items()}
    assert code_of(params, from_query=from_query) == "InvalidParameterValue.ImageEmpty"


def test_unknown_checked_before_types() -> None:
    assert code_of({"Mode": "x", "Zzz": 1}, from_query=False) == "UnknownParameter"


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
KNOWN_CODES = {
    "UnknownParameter",
    "InvalidParameter.InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterValue.FaceModelVersionIllegal",
    "InvalidParameterValue.ImageEmpty",
}


@given(
    st.dictionaries(st.sampled_from(sorted(ANALYZE_PARAMS)) | st.text(max_size=8), JSON_VALUES, max_size=6),
    st.booleans(),
)
def test_never_crashes(params: dict[str, Any], from_query: bool) -> None:
    result = outcome(params, from_query=from_query)
    if isinstance(result, ApiError):
        assert result.code in KNOWN_CODES
        return
    assert result.mode in (0, 1)
    assert (result.url is None) != (result.image_b64 is None)
    assert result.face_model_version == "3.0"


def test_each_action_by_name() -> None:
    """The table routes by name; AnalyzeFace takes "2.0" too and up to 10 faces, the dense action not."""
    from denseface.rpc.actions import ACTIONS
    from denseface.rpc.catalog import IMPLEMENTED_ACTIONS

    assert tuple(ACTIONS) == IMPLEMENTED_ACTIONS == ("AnalyzeDenseLandmarks", "AnalyzeFace")
    dense, face = ACTIONS["AnalyzeDenseLandmarks"], ACTIONS["AnalyzeFace"]
    assert (dense.max_faces, face.max_faces) == (5, 10)
    for from_query in (False, True):
        assert face.parse({"Image": IMAGE}, from_query=from_query).face_model_version == "3.0"
        assert (
            face.parse({"Image": IMAGE, "FaceModelVersion": "2.0"}, from_query=from_query).face_model_version
            == "2.0"
        )
        for action, version in ((face, "1.0"), (face, "2"), (dense, "2.0")):
            with pytest.raises(ApiError) as info:
                action.parse({"Image": IMAGE, "FaceModelVersion": version}, from_query=from_query)
            assert info.value.code == "InvalidParameterValue.FaceModelVersionIllegal"
        with pytest.raises(ApiError) as info:
            face.parse({"Image": IMAGE, "Mode": "2" if from_query else 2}, from_query=from_query)
        assert info.value.code == "InvalidParameterValue"
