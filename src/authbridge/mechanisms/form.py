"""The form pipeline shared by ``api_key``, ``pwd`` and ``jwt``.

check the entered fields → ``validate`` → ``request_profile_info`` (or the fields themselves) →
account name → a :class:`ConnectResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authbridge import errors
from authbridge.connectors.models import AuthDefinition, Fields, FormDefinition
from authbridge.mechanisms.base import ConnectResult, Mechanism
from authbridge.mechanisms.context import Context
from authbridge.mechanisms.properties import account_name, call, resolve
from authbridge.redaction import redact

MAX_FIELD_LENGTH = 10_000
MAX_TEXTAREA_LENGTH = 100_000


def check_fields(spec: Fields, entered: Mapping[str, Any]) -> dict[str, str]:
    """Check entered values against the form's fields; return them cleaned.

    Values are trimmed, except passwords, which are kept exactly as typed; an absent or empty
    value takes the field's default.

    Raises :class:`InvalidInput` naming the first field at fault (by its label).
    """
    unknown = sorted(set(entered) - set(spec))
    if unknown:
        raise errors.InvalidInput(f"unknown field '{unknown[0]}'", field=unknown[0])
    cleaned: dict[str, str] = {}
    for name, field_spec in spec.items():
        label = field_spec.name or name
        raw = entered.get(name)
        if raw is None or raw == "":
            raw = field_spec.default
        if raw is None or raw == "":
            if field_spec.required:
                raise errors.InvalidInput(f"'{label}' is required", field=name)
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise errors.InvalidInput(f"'{label}' must be text", field=name)
        value = str(raw) if field_spec.is_secret else str(raw).strip()
        limit = MAX_TEXTAREA_LENGTH if field_spec.type == "textarea" else MAX_FIELD_LENGTH
        if len(value) > limit:
            raise errors.InvalidInput(f"'{label}' is longer than {limit} characters", field=name)
        if field_spec.type == "select" and value not in {o.value for o in field_spec.options}:
            raise errors.InvalidInput(f"'{label}' must be one of the offered options", field=name)
        allowed = "\t\n\r" if field_spec.type == "textarea" else ""
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise errors.InvalidInput(f"'{label}' is not valid text", field=name)
        if any((ord(c) < 32 or 0x7F <= ord(c) <= 0x9F) and c not in allowed for c in value):
            raise errors.InvalidInput(f"'{label}' contains control characters", field=name)
        if not value.strip():
            if field_spec.required:
                raise errors.InvalidInput(f"'{label}' is required", field=name)
            continue
        cleaned[name] = value
    return cleaned


@dataclass(frozen=True)
class Validation:
    """What ``validate`` added: tokens to store beside the fields, and their expiry."""

    tokens: Mapping[str, Any] = field(default_factory=dict, repr=False)
    expires_at: datetime | None = None


class FormMechanism(Mechanism):
    """Base of the mechanisms whose credentials are a set of named fields."""

    def form_fields(self, definition: AuthDefinition) -> Fields:
        assert isinstance(definition, FormDefinition)
        return definition.auth

    async def connect(self, definition: AuthDefinition, context: Context) -> ConnectResult:
        assert isinstance(definition, FormDefinition)
        context = context.replace(fields=check_fields(definition.auth, context.fields))
        validation = Validation()
        if definition.validate_ is not None:
            outcome = await self._run_validate(definition, context)
            validation = self.interpret_validation(
                outcome, context, from_code=callable(definition.validate_)
            )
        context = context.replace(tokens=validation.tokens)
        profile: Mapping[str, Any] | None = None
        if definition.request_profile_info is not None:
            profile = await self._fetch_profile(definition, context)
            context = context.replace(profile=profile)
        name_source = profile if profile is not None else self._public_fields(definition, context)
        name = await account_name(definition.account_name_from_profile_info, context, name_source)
        return ConnectResult(
            account_name=name,
            credentials={**context.fields, **validation.tokens},
            profile=profile,
            expires_at=validation.expires_at,
        )

    def interpret_validation(
        self, outcome: Any, context: Context, *, from_code: bool
    ) -> Validation:
        """Turn ``validate``'s result into tokens to store; form auths store none.

        ``from_code`` says whether the result came from a callable (a contract) or is the body
        of a provider response (whatever the provider answers).
        """
        return Validation()

    @staticmethod
    def _public_fields(definition: FormDefinition, context: Context) -> dict[str, Any]:
        """The fields an account name may be taken from: never a masked (secret) one."""
        return {
            name: value
            for name, value in context.fields.items()
            if not definition.auth[name].is_secret
        }

    async def _run_validate(self, definition: FormDefinition, context: Context) -> Any:
        assert definition.validate_ is not None
        try:
            outcome = await resolve(
                definition.validate_, context, failure=errors.CredentialsRejected
            )
        except errors.ProviderUnavailable:
            raise
        except errors.ProviderError as exc:
            raise await self._rejection(definition, context, exc) from exc
        if outcome is False:
            raise errors.CredentialsRejected("The credentials were not accepted.")
        return outcome

    async def _rejection(
        self, definition: FormDefinition, context: Context, error: errors.ProviderError
    ) -> errors.ProviderError:
        """The error to show when ``validate`` failed, after ``validate_err_callback``."""
        callback = definition.validate_err_callback
        if callback is None or callable(definition.validate_):
            return _as_rejection(error)
        try:
            replacement = await call(callback, error)
        except errors.ProviderError as exc:
            return _as_rejection(exc)
        except Exception as exc:  # the callback raises the message to show, as documented
            message = redact(str(exc), context.secrets())
            return errors.CredentialsRejected(message or error.message, body=error.body)
        if isinstance(replacement, str) and replacement:
            return errors.CredentialsRejected(redact(replacement, context.secrets()))
        return _as_rejection(error)

    async def _fetch_profile(
        self, definition: FormDefinition, context: Context
    ) -> Mapping[str, Any]:
        assert definition.request_profile_info is not None
        profile = await resolve(definition.request_profile_info, context)
        if not isinstance(profile, Mapping):
            raise errors.ProviderError("the profile request did not return a JSON object")
        return profile


def _as_rejection(error: errors.ProviderError) -> errors.ProviderError:
    if isinstance(error, errors.CredentialsRejected | errors.ProviderUnavailable):
        return error
    return errors.CredentialsRejected(error.message, status_code=error.status_code, body=error.body)
