"""The fixtures every test folder shares live in ``tests/support`` and are loaded here.

- ``databases``: ``database`` (SQLite and PostgreSQL), ``postgres_database``;
- ``app``: ``keyring``, ``environment``, ``end_user``, ``sandbox``, ``bridge``, ``api``;
- ``cli``: ``home``, ``target``, ``opened`` and the :data:`tests.support.cli.both` mark;
- ``browser``: Chromium through Playwright.
"""

pytest_plugins = [
    "tests.support.databases",
    "tests.support.app",
    "tests.support.cli",
    "tests.support.browser",
]
