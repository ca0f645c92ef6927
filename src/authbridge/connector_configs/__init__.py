"""Connector configurations: per environment and variant, the OAuth client (or consumer), the
redirect URI, the scopes and the settings a connector declares; and the connector setups the
other use cases build from them (definition, client configuration, callback URL). A slice:

* ``repository``: the table (secrets encrypted); ``service``: setups, configure (whole or in
  part), import templates; ``schemas`` and ``endpoints``: ``/v1/connectors`` and
  ``/v1/connector-configs``; ``cli``: ``authbridge connector-config``.

The connector definitions themselves (models, loader, registry) are the lower layer
``authbridge.connectors``.
"""
