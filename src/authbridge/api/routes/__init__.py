"""The routes that belong to no slice: ``/metrics``."""
