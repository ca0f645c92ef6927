"""authbridge: the self-hosted auth layer for integrations."""

__version__ = "0.1.0"
