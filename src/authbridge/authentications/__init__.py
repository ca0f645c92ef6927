"""Authentications: the connected accounts, their encrypted credentials, and reading them fresh
(``GET …/credentials``, ``…/request-auth``), the hot path of every host job. A slice:

* ``repository``: the table (create, read, list, change, delete) and its sealed credentials;
  ``rows``: the lean credential row read;
* ``freshness``: the one freshness policy; ``service``: list, read, rename, delete, store;
* ``use``: request rules rendered for a caller; ``imports``: credentials imported by API or a
  host-signed JWT; ``reads``: the credential reads (cache, one SELECT, decrypt, audit queue);
* ``schemas``, ``endpoints`` (``/v1/authentications``) and ``cli`` (``authbridge import``).

Refreshing them is the ``refresh`` slice's (its ``repository`` holds the lease statements).
"""
