from __future__ import annotations

import pytest

from controller import errors, tools


def test_tool_past_its_deadline_is_a_clear_error() -> None:
    with pytest.raises(errors.BundleError, match=r"bundle b, target t: sleep did not wait within 0s"):
        tools.run(["sleep", "5"], source="bundle b, target t", what="wait", timeout=0.2)


def test_failing_tool_reports_its_message_without_sandbox_paths() -> None:
    with pytest.raises(errors.BundleError) as caught:
        tools.run(
            ["sh", "-c", "echo 'no file /tmp/box/x.yaml' >&2; exit 3"],
            source="s",
            what="go",
            timeout=10,
            hide="/tmp/box/",
        )
    assert str(caught.value) == "s: sh could not go: no file x.yaml"


def test_missing_binary_is_a_clear_error() -> None:
    with pytest.raises(errors.BundleError, match="cannot run /nonexistent/helm"):
        tools.run(["/nonexistent/helm"], source="s", what="go", timeout=10)
