"""The use cases of authbridge, one module per concern, over the storage, vault, mechanism and
HTTP layers; the REST API, GraphQL and the CLI are adapters over them (see
``docs/architecture.md``, "Services")."""
