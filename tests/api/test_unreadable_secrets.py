"""A stored secret that cannot be decrypted is refused with a 500 that names nothing of the
storage, and the operator is alerted once per row with where it is (SQLite and PostgreSQL).

Each case alters a stored ciphertext for real (a flipped byte in the row), as a tampered or
damaged database would hold it, and reads it through the API or a page several times.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import select

from authbridge.storage.models import Authentication, ConnectorConfig
from tests.support.api_calls import assert_problem, import_key
from tests.support.app import Api


def flip_last_byte(token: bytes) -> bytes:
    altered = bytearray(token)
    altered[-1] ^= 1
    return bytes(altered)


def warnings_or_worse(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def assert_one_alert(
    caplog: pytest.LogCaptureFixture, table: str, column: str, row_id: str, key_id: str
) -> None:
    lines = warnings_or_worse(caplog)
    assert [(r.name, r.levelno) for r in lines] == [("authbridge.vault", logging.ERROR)], [
        r.getMessage() for r in lines
    ]
    message = lines[0].getMessage()
    assert f"table={table} column={column} row_id={row_id} key_id={key_id}" in message
    assert not any(record.exc_info for record in caplog.records)
    assert "Traceback" not in caplog.text


def test_a_tampered_credential_is_a_500_naming_no_internals_alerted_once(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    auth_id = import_key(api)["id"]
    key_id = api.bridge.keyring.primary
    with api.bridge.session() as session:
        row = session.get(Authentication, auth_id)
        assert row is not None
        row.credentials_ct = flip_last_byte(row.credentials_ct)
    caplog.clear()

    for path in ("credentials", "credentials", "request-auth", "credentials"):
        response = api.call("GET", f"/v1/authentications/{auth_id}/{path}")
        problem = assert_problem(response, 500, "decryption_failed")
        assert "cannot be decrypted" in problem["detail"]
        for internal in ("authentications", "credentials_ct", auth_id, key_id):
            assert internal not in response.text, (internal, response.text)

    assert_one_alert(caplog, "authentications", "credentials_ct", auth_id, key_id)
    # The refusal loses nothing: the row is still there, for the operator to restore.
    listed = api.call("GET", f"/v1/authentications/{auth_id}")
    assert listed.status_code == 200, listed.text


def test_a_tampered_client_secret_is_a_500_page_naming_no_internals_alerted_once(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    configured = api.call("PUT", "/v1/connector-configs/sandbox-oauth2", json=body)
    assert configured.status_code in (200, 201), configured.text
    with api.bridge.session() as session:
        config = session.scalars(
            select(ConnectorConfig).where(ConnectorConfig.connector_key == "sandbox-oauth2")
        ).one()
        config.secrets_ct = flip_last_byte(config.secrets_ct)
        config_id = config.id
    session_body = {"external_user_id": "user-1", "connector": "sandbox-oauth2"}
    opened = api.call("POST", "/v1/connect/sessions", json=session_body)
    assert opened.status_code == 201, opened.text
    connect_url = opened.json()["url"]
    key_id = api.bridge.keyring.primary
    caplog.clear()

    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        for _ in range(2):
            page = browser.post(connect_url + "/oauth")
            assert page.status_code == 500, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert "cannot be decrypted" in page.text
            for internal in ("connector_configs", "secrets_ct", config_id, key_id):
                assert internal not in page.text, internal

    assert_one_alert(caplog, "connector_configs", "secrets_ct", config_id, key_id)
