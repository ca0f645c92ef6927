"""Loading connector folders: file formats, keys, manifests and problem reports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from authbridge.connectors.loader import DefinitionContext, load_connector
from authbridge.connectors.models import ApiKeyDefinition, NoneDefinition, OAuth2Definition
from authbridge.connectors.registry import scan_folder
from authbridge.errors import DefinitionError


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_yaml_connector_with_manifest(tmp_path: Path) -> None:
    auth = write(
        tmp_path,
        "acme/helpdesk/auth.yaml",
        """
        type: apiKey
        definition:
          auth:
            api_key: {type: password, name: API key}
          validate: https://api.acme.example/me
        """,
    )
    write(
        tmp_path,
        "acme/helpdesk/manifest.yaml",
        """
        label: Acme Helpdesk
        version: 2
        icon: https://acme.example/icon.svg
        docs_url: https://acme.example/docs
        """,
    )
    connector = load_connector(auth, origin="test")
    assert (connector.key, connector.version, connector.auth_type) == ("helpdesk", "2", "api_key")
    assert connector.label == "Acme Helpdesk"
    assert connector.manifest.docs_url == "https://acme.example/docs"
    assert isinstance(connector.definition(), ApiKeyDefinition)


def test_a_manifest_sets_the_expiry_warning_window(tmp_path: Path) -> None:
    definition = """
        type: apiKey
        definition:
          auth:
            api_key: {type: password, name: API key}
        """
    auth = write(tmp_path, "acme/strict/auth.yaml", definition)
    write(tmp_path, "acme/strict/manifest.yaml", "expiryWarningDays: 10\n")
    assert load_connector(auth, origin="test").manifest.expiry_warning_days == 10
    bad = write(tmp_path, "acme/never/auth.yaml", definition)
    write(tmp_path, "acme/never/manifest.yaml", "expiry_warning_days: 0\n")
    with pytest.raises(DefinitionError) as caught:
        load_connector(bad, origin="test")
    (problem,) = caught.value.problems
    assert problem.path == "expiry_warning_days"
    assert "greater than 0" in problem.reason


def test_python_connector_with_callable_definition(tmp_path: Path) -> None:
    auth = write(
        tmp_path,
        "acme/tasks/auth.py",
        """
        type = "oauth2"

        def definition(context):
            return {
                "auth_url": "https://acme.example/authorize",
                "request_access_token": "https://acme.example/token",
                "authorization_params": {"callback_hint": context.callbackUrl},
            }
        """,
    )
    connector = load_connector(auth, origin="test")
    built = connector.definition(DefinitionContext(callback_url="https://ab.example/cb"))
    assert isinstance(built, OAuth2Definition)
    assert built.authorization_params == {"callback_hint": "https://ab.example/cb"}


def test_problems_name_file_key_path_and_reason(tmp_path: Path) -> None:
    auth = write(
        tmp_path,
        "acme/broken/auth.yaml",
        """
        type: apiKey
        definition:
          auth: {}
          validate: 42
          colour: blue
          validateErrCallback: "not code"
        """,
    )
    with pytest.raises(DefinitionError) as caught:
        load_connector(auth, origin="test")
    found = {(p.file, p.path): p.reason for p in caught.value.problems}
    assert found[(str(auth), "definition.auth")] == "at least one field is required"
    assert "URL string, a request spec" in found[(str(auth), "definition.validate")]
    assert found[(str(auth), "definition.colour")] == "unknown key"
    assert "YAML definition cannot hold" in found[(str(auth), "definition.validateErrCallback")]


def test_nested_key_paths_in_request_specs(tmp_path: Path) -> None:
    auth = write(
        tmp_path,
        "acme/nested/auth.yaml",
        """
        type: oauth2
        definition:
          auth_url: https://acme.example/authorize
          request_access_token: {url: https://acme.example/token, methd: POST}
        """,
    )
    with pytest.raises(DefinitionError) as caught:
        load_connector(auth, origin="test")
    assert [(p.path, p.reason) for p in caught.value.problems] == [
        ("definition.request_access_token.methd", "unknown key")
    ]


def test_missing_required_property_and_bad_type(tmp_path: Path) -> None:
    pwd = write(tmp_path, "a/pwd/auth.yaml", "type: pwd\ndefinition: {}\n")
    with pytest.raises(DefinitionError) as caught:
        load_connector(pwd, origin="test")
    assert [(p.path, p.reason) for p in caught.value.problems] == [
        ("definition.validate", "is required")
    ]
    bad = write(tmp_path, "a/bad/auth.yaml", "type: saml\ndefinition: {}\n")
    with pytest.raises(DefinitionError, match="'saml' is not an auth type"):
        load_connector(bad, origin="test")


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    auth = write(
        tmp_path,
        "a/evil/auth.yaml",
        "type: apiKey\ndefinition:\n  validate: !!python/name:os.system\n",
    )
    with pytest.raises(DefinitionError) as caught:
        load_connector(auth, origin="test")
    (problem,) = caught.value.problems
    assert problem.path == "line 3"
    assert "cannot hold code" in problem.reason


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    auth = write(tmp_path, "a/typo/auth.yaml", "type: apiKey\ndefinition:\n  auth: [\n")
    with pytest.raises(DefinitionError) as caught:
        load_connector(auth, origin="test")
    assert caught.value.problems[0].path.startswith("line ")
    assert "invalid YAML" in caught.value.problems[0].reason


def test_python_import_error_is_a_problem(tmp_path: Path) -> None:
    auth = write(tmp_path, "a/crash/auth.py", "type = 'apiKey'\nraise RuntimeError('boom')\n")
    with pytest.raises(DefinitionError, match="importing it failed: RuntimeError: boom"):
        load_connector(auth, origin="test")


def test_python_definition_missing(tmp_path: Path) -> None:
    auth = write(tmp_path, "a/empty/auth.py", "type = 'apiKey'\n")
    with pytest.raises(DefinitionError, match="definition: is required"):
        load_connector(auth, origin="test")


def test_scan_collects_every_problem_and_keeps_good_connectors(tmp_path: Path) -> None:
    write(tmp_path, "a/good/auth.yaml", "type: none\n")
    write(tmp_path, "a/bad1/auth.yaml", "type: pwd\ndefinition: {}\n")
    write(tmp_path, "a/bad2/auth.yaml", "type: apiKey\ndefinition: {auth: {}}\n")
    write(tmp_path, "a/twice/auth.yaml", "type: none\n")
    write(tmp_path, "a/twice/auth.py", "type = 'none'\n")
    write(tmp_path, "toplevel/auth.yaml", "type: none\n")
    report = scan_folder(tmp_path, origin="test")
    assert [c.key for c in report.connectors] == ["good"]
    messages = [str(p) for p in report.problems]
    assert len(messages) == 4
    assert any("bad1/auth.yaml: definition.validate: is required" in m for m in messages)
    assert any("bad2/auth.yaml: definition.auth" in m for m in messages)
    assert any("twice: has auth.py, auth.yaml: keep only one" in m for m in messages)
    assert any("toplevel/auth.yaml: must sit at" in m for m in messages)


def test_module_level_auth_and_duplicate_keys(tmp_path: Path) -> None:
    write(tmp_path, "google/workspace/gmail/auth.yaml", "type: none\n")
    write(tmp_path, "other/gmail/auth.yaml", "type: none\n")
    report = scan_folder(tmp_path, origin="test")
    assert [c.key for c in report.connectors] == ["gmail"]
    (problem,) = report.problems
    assert "connector 'gmail' version 1 is already defined by" in str(problem)


def test_folder_name_must_make_a_valid_key(tmp_path: Path) -> None:
    write(tmp_path, "acme/My Service/auth.yaml", "type: none\n")
    report = scan_folder(tmp_path, origin="test")
    assert "connector key 'My Service' must be lowercase" in str(report.problems[0])


# --- callable definitions: zero arguments, and code that raises (issue 13) ---------------------


ASANA_STYLE = """
type = "oauth2"


def definition():
    profile = {}

    def request_profile_info(context):
        return profile

    return {
        "authUrl": "https://app.asana.example/-/oauth_authorize",
        "requestAccessToken": "https://app.asana.example/-/oauth_token",
        "requestProfileInfo": request_profile_info,
    }
"""


def test_a_definition_taking_no_argument_is_called_without_one(tmp_path: Path) -> None:
    auth = write(tmp_path, "asana/asana/auth.py", ASANA_STYLE)
    connector = load_connector(auth, origin="test")
    built = connector.definition(DefinitionContext(callback_url="https://ab.example/cb"))
    assert isinstance(built, OAuth2Definition)
    assert callable(built.request_profile_info)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (
            "def definition(context):\n    raise RuntimeError('no tenant configured')\n",
            "calling it failed: RuntimeError: no tenant configured",
        ),
        (
            "def definition():\n    return {}['missing']\n",
            "calling it failed: KeyError: 'missing'",
        ),
        (
            "def definition(context, extra):\n    return {}\n",
            "must take one argument (the context) or none",
        ),
        (
            "async def definition(context):\n    return {}\n",
            "must return a mapping, not an awaitable: a definition cannot be async",
        ),
    ],
)
def test_a_definition_that_cannot_be_called_is_a_problem(
    tmp_path: Path, code: str, reason: str
) -> None:
    write(tmp_path, "acme/good/auth.yaml", "type: none\n")
    auth = write(tmp_path, "acme/broken/auth.py", f"type = 'oauth2'\n\n\n{code}")
    report = scan_folder(tmp_path, origin="test")
    assert [c.key for c in report.connectors] == ["good"]
    assert [(p.file, p.path, p.reason) for p in report.problems] == [
        (str(auth), "definition", reason)
    ]


def test_a_definition_raising_on_real_client_values_hides_them(tmp_path: Path) -> None:
    auth = write(
        tmp_path,
        "acme/picky/auth.py",
        """
        type = "oauth2"


        def definition(context):
            if context.clientSecret:
                raise ValueError(f"secret {context.clientSecret} is not for this tenant")
            return {"authUrl": "https://a.example/auth", "requestAccessToken": "https://a.example/t"}
        """,
    )
    connector = load_connector(auth, origin="test")  # the placeholder secret is empty
    with pytest.raises(DefinitionError) as caught:
        connector.definition(
            DefinitionContext(callback_url="https://ab.example/cb", client_secret="s3cr3t-value")
        )
    (problem,) = caught.value.problems
    assert (problem.file, problem.path) == (str(auth), "definition")
    assert problem.reason == (
        "calling it failed: ValueError: secret [redacted] is not for this tenant"
    )
    assert "s3cr3t-value" not in str(caught.value)


def test_a_folder_with_only_a_manifest_is_a_connector_without_per_user_auth(
    tmp_path: Path,
) -> None:
    write(tmp_path, "acme/notes/manifest.yaml", "label: Acme Notes\nversion: '2'\n")
    write(tmp_path, "acme/keyed/manifest.yml", "key: acme-keyed\n")
    report = scan_folder(tmp_path, origin="test")
    assert report.problems == []
    keyed, notes = report.connectors
    assert (notes.key, notes.version, notes.label, notes.auth_type) == (
        "notes",
        "2",
        "Acme Notes",
        "none",
    )
    assert notes.definition() == NoneDefinition()
    assert notes.source == tmp_path / "acme/notes/manifest.yaml"
    assert (keyed.key, keyed.auth_type) == ("acme-keyed", "none")


def test_a_manifest_above_module_connectors_is_no_connector_of_its_own(tmp_path: Path) -> None:
    write(tmp_path, "google/workspace/manifest.yaml", "label: Google Workspace\n")
    write(tmp_path, "google/workspace/gmail/auth.yaml", "type: none\n")
    report = scan_folder(tmp_path, origin="test")
    assert report.problems == []
    assert [c.key for c in report.connectors] == ["gmail"]


def test_a_manifest_only_folder_reports_its_problems(tmp_path: Path) -> None:
    write(tmp_path, "acme/bad/manifest.yaml", "key: Not A Key\n")
    write(tmp_path, "acme/odd/manifest.yaml", "colour: blue\n")
    write(tmp_path, "loose/manifest.yaml", "label: Loose\n")
    report = scan_folder(tmp_path, origin="test")
    assert report.connectors == []
    messages = sorted(str(problem) for problem in report.problems)
    assert len(messages) == 3, messages
    assert "acme/bad/manifest.yaml: key: must be lowercase" in messages[0]
    assert "acme/odd/manifest.yaml: colour: unknown key" in messages[1]
    assert "loose/manifest.yaml: must sit at" in messages[2]
