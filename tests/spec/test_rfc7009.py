from __future__ import annotations

from authbridge.spec.rfc7009 import revocation_params, token_to_revoke


def test_the_refresh_token_is_revoked_when_there_is_one() -> None:
    assert token_to_revoke({"access_token": "a", "refresh_token": "r"}) == ("refresh_token", "r")


def test_else_the_access_token() -> None:
    assert token_to_revoke({"access_token": "a", "refresh_token": ""}) == ("access_token", "a")


def test_nothing_to_revoke_without_a_token() -> None:
    assert token_to_revoke({}) is None
    assert token_to_revoke({"access_token": 42}) is None


def test_the_form_holds_the_token_its_hint_and_the_client_parameters() -> None:
    form = revocation_params("r", "refresh_token", {"client_id": "c"})
    assert form == {"token": "r", "token_type_hint": "refresh_token", "client_id": "c"}
