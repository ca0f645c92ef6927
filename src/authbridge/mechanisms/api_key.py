"""``api_key``: credentials typed into a form and checked by ``validate``."""

from __future__ import annotations

from authbridge.mechanisms.form import FormMechanism


class ApiKeyMechanism(FormMechanism):
    type = "api_key"
