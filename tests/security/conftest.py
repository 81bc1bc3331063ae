"""Fixtures of the hardening suite: one shared victim profile per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certwiz import ca, issue
from certwiz.profile import Profile
from tests.conftest import Result


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profile]:
    """Profile 'victim' with client alice and server www.example.com already issued."""
    home = tmp_path_factory.mktemp("hostile") / "certs"
    profile = ca.init("victim", home)
    issue.issue_client(profile, "alice")
    issue.issue_server(profile, "www.example.com")
    yield profile


def one_error_line(result: Result | str) -> str:
    """The single stderr line of a refused command (and proof there is only one)."""
    stderr = result if isinstance(result, str) else result.stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("certwiz: error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]
