"""``examples/sdk/trigger.py`` runs as the README shows, against a real server and sandbox."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authbridge.sandbox.app import PROFILE
from authbridge.sdk import Client
from tests.sdk.conftest import RevokingProvider, connect_oauth
from tests.support.app import Api

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sdk" / "trigger.py"


@pytest.fixture
def run_example(sdk_api: Api, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Run the example's ``main`` with ``AB`` and ``TOKEN`` set as the README says."""
    monkeypatch.setenv("AB", sdk_api.url)
    monkeypatch.setenv("TOKEN", sdk_api.master_token)
    main: Callable[[list[str]], None] = runpy.run_path(str(EXAMPLE))["main"]
    return lambda *args: main([str(EXAMPLE), *args])


def printed_profile(out: str) -> dict[str, Any]:
    heading, _, body = out.partition("\n")
    assert heading.endswith(":")
    profile: dict[str, Any] = json.loads(body)
    return profile


def test_the_trigger_reads_the_sandbox_account(
    run_example: Callable[..., None], bridge: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    run_example()
    first = capsys.readouterr().out
    run_example()
    second = capsys.readouterr().out

    assert first.startswith("sandbox-apikey account ")
    assert printed_profile(first) == PROFILE
    assert second == first  # the demo account is imported once, then found again
    assert len(list(bridge.list_authentications(external_user_id="user-42"))) == 1


def test_the_trigger_runs_with_any_connected_account(
    run_example: Callable[..., None],
    bridge: Client,
    provider: RevokingProvider,
    capsys: pytest.CaptureFixture[str],
) -> None:
    auth_id = connect_oauth(bridge, provider)
    provider.revoke(next(iter(provider.access_tokens)))

    run_example(auth_id)

    assert printed_profile(capsys.readouterr().out) == provider.profile
    assert provider.refreshes() == 1


def test_without_a_token_the_example_says_what_to_set(
    run_example: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKEN")
    with pytest.raises(SystemExit, match="Set TOKEN"):
        run_example()
