"""The credential proxy: ``/v1/proxy/{auth_id}/{path}`` forwards a request to the connector's
API with the authentication's request rules applied (headers, query, HTTP Basic, OAuth 1.0a
signing), refreshing the credentials first when due, and audits it. A slice:

* ``service``: the cached rendered rules, the upstream request and the response shaping;
* ``endpoints``: the plain Starlette endpoint, routed before every other route.
"""
