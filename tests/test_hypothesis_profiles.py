"""The Hypothesis profile registered in conftest: fixed examples under CI, random ones locally."""

from __future__ import annotations

import os

from hypothesis import settings


def test_profile_follows_the_environment() -> None:
    default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
    ci = (os.environ.get("HYPOTHESIS_PROFILE") or default) == "ci"
    assert settings.default.deadline is None
    assert settings.default.derandomize is ci
    if ci:
        assert settings.default.database is None
        assert settings.default.print_blob
        assert settings.default.max_examples == 100
