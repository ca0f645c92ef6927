"""Connecting an account: a one-time connect link (``POST /v1/connect-sessions``) opens the
connect page, where the end user picks an existing account or adds one (a form, or a round trip
through the provider's sign-in page), or edits and reconnects one in place. A slice:

* ``repository``: connect sessions and OAuth states; ``service``: the page's use cases (load,
  pick, run the form, finish); ``oauth``: the provider sign-in round trip;
* ``schemas`` and ``endpoints``: ``/v1/connect-sessions``; ``pages`` and ``oauth_pages``: the
  HTML pages and the OAuth callback (rendered with ``api/rendering.py``); ``cli``:
  ``authbridge connect-link``.
"""
