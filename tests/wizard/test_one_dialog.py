"""An authorization code opens one dialog, over real HTTP, on SQLite and PostgreSQL.

Two "tabs" are two flows of one browser (one httpx client, one cookie jar) started from the
same code: the second dialog is refused, and a connect page a tab was left on stores nothing.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from authbridge.storage.models import Authentication, AuthorizationCode, ConnectSession
from tests.support.api_calls import import_key
from tests.support.app import SANDBOX_KEY, Api
from tests.support.wizard_steps import HOST_ORIGIN, auth_values_of, instance, mint_code
from tests.support.wizard_steps import two_slot_solution as wizard_solution

ALREADY_OPENED = "This link was already used to open another window"
EXPIRED = "This link has expired or was already used"


def browser() -> httpx.Client:
    return httpx.Client(timeout=10, follow_redirects=False)


def result_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    found = re.search(r'data-result="([^"]*)" data-origin="([^"]*)"', response.text)
    assert found, response.text
    assert html.unescape(found.group(2)) == HOST_ORIGIN
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def stamps(api: Api) -> dict[str, tuple[int, bytes]]:
    """Each authentication's version and credentials ciphertext, by id."""
    with api.bridge.session() as session:
        return {
            auth.id: (auth.version, auth.credentials_ct) for auth in session.query(Authentication)
        }


def connect_sessions(api: Api) -> list[ConnectSession]:
    with api.bridge.session() as session:
        found = session.query(ConnectSession).all()
        session.expunge_all()
        return found


def edit_url(api: Api, auth_id: str, code: str) -> str:
    return f"{api.url}/external/auth/edit/default/{auth_id}?code={code}"


def test_two_tabs_editing_two_auths_with_one_code_the_second_is_refused(api: Api) -> None:
    first = import_key(api, name="Account A")
    second = import_key(api, name="Account B")
    before = stamps(api)
    code = mint_code(api)
    with browser() as tab:  # two tabs of one browser share its cookies
        opened = tab.get(edit_url(api, first["id"], code))
        assert opened.status_code == 303, opened.text
        connect_a = opened.headers["location"]

        refused = tab.get(edit_url(api, second["id"], code))
        assert refused.status_code == 404, refused.text
        assert ALREADY_OPENED in refused.text
        assert "location" not in refused.headers
        assert len(connect_sessions(api)) == 1  # no dialog was opened for B

        stored = tab.post(connect_a, data={"action": "connect", "field.api_key": SANDBOX_KEY})
        assert stored.status_code == 303, stored.text
        done = tab.get(stored.headers["location"])
        assert result_of(done) == {"authId": first["id"], "connector": "sandbox-apikey"}
        assert "not connected for this link" not in done.text

        used = tab.get(edit_url(api, second["id"], code))
        assert used.status_code == 404
        assert EXPIRED in used.text
    after = stamps(api)
    assert after[first["id"]][0] == before[first["id"]][0] + 1  # A was reconnected
    assert after[second["id"]] == before[second["id"]]  # B was never touched
    assert len(after) == 2


def test_the_same_edit_link_opens_once(api: Api) -> None:
    auth = import_key(api)
    code = mint_code(api)
    url = edit_url(api, auth["id"], code)
    with browser() as tab:
        assert tab.get(url).status_code == 303
        again = tab.get(url)
        assert again.status_code == 404
        assert ALREADY_OPENED in again.text
    assert len(connect_sessions(api)) == 1


def test_a_code_that_opened_the_wizard_opens_no_edit_link_and_the_reverse(api: Api) -> None:
    auth = import_key(api)["id"]
    solution_id = wizard_solution(api)
    wizard_code, edit_code = mint_code(api), mint_code(api)
    wizard_page = f"{api.url}/external/solutions/default/{solution_id}"
    with browser() as tab:
        shown = tab.get(f"{wizard_page}?code={wizard_code}")
        assert shown.status_code == 200, shown.text
        edit = tab.get(edit_url(api, auth, wizard_code))
        assert edit.status_code == 404
        assert ALREADY_OPENED in edit.text
        assert connect_sessions(api) == []
        # the wizard's own screens, in this tab or another, are the same dialog
        assert tab.get(f"{wizard_page}?code={wizard_code}&step=target").status_code == 200
        with browser() as other_tab:
            assert other_tab.get(f"{wizard_page}?code={wizard_code}").status_code == 200

        assert tab.get(edit_url(api, auth, edit_code)).status_code == 303
        wizard = tab.get(f"{wizard_page}?code={edit_code}")
        assert wizard.status_code == 404
        assert ALREADY_OPENED in wizard.text
        picked = tab.post(
            f"{wizard_page}?code={edit_code}&step=source",
            data={"action": "pick", "step": "source", "authentication_id": auth},
        )
        assert picked.status_code == 404
        assert ALREADY_OPENED in picked.text


def test_a_connect_page_left_in_another_tab_stores_nothing(api: Api) -> None:
    """Of two "connect a new account" flows of one wizard, only the newest can finish."""
    existing = import_key(api)["id"]
    solution_id = wizard_solution(api)
    code = mint_code(api)
    page = f"{api.url}/external/solutions/default/{solution_id}?code={code}"
    with browser() as tab:
        old = tab.post(f"{page}&step=source", data={"action": "connect", "step": "source"})
        assert old.status_code == 303, old.text
        new = tab.post(f"{page}&step=source", data={"action": "connect", "step": "source"})
        assert new.status_code == 303, new.text
        before = stamps(api)

        left = tab.post(
            old.headers["location"], data={"action": "connect", "field.api_key": SANDBOX_KEY}
        )
        assert left.status_code == 404, left.text
        assert EXPIRED in left.text
        assert stamps(api) == before  # no account was stored

        stored = tab.post(
            new.headers["location"], data={"action": "connect", "field.api_key": SANDBOX_KEY}
        )
        assert stored.status_code == 303, stored.text
        back = tab.get(stored.headers["location"])
        assert back.status_code == 303, back.text
        [created] = set(stamps(api)) - set(before)
        picked = tab.post(
            f"{page}&step=target",
            data={"action": "pick", "step": "target", "authentication_id": existing},
        )
        assert picked.status_code == 303, picked.text
        done = tab.post(
            f"{page}&step=config",
            data={
                "action": "finish",
                "step": "config",
                "config.sheet_name": "leads",
                "config.batch": "5",
                "config.mode": '"append"',
            },
        )
        result = result_of(done)
    values = auth_values_of(instance(api, result["solutionInstanceId"]))
    assert values["source"] == created
    assert values["target"] == existing


def test_a_connect_session_lives_no_longer_than_its_code(api: Api) -> None:
    auth = import_key(api)["id"]
    code = mint_code(api)
    with browser() as tab:
        assert tab.get(edit_url(api, auth, code)).status_code == 303
    with api.bridge.session() as session:
        expires = session.query(AuthorizationCode).one().expires_at
    [opened] = connect_sessions(api)
    assert opened.expires_at <= expires
