"""The configuration wizard: a one-time authorization code opens a themed, step-by-step page
where an end user connects the accounts a solution needs and fills its settings, and ends with
an enabled solution instance. A slice:

* ``repository``: the authorization codes (one-time, with the wizard's progress);
* ``config_form``: the settings form of a solution's config slots; ``service``: opening a code,
  each step, finishing;
* ``endpoints``: ``POST /v1/authorization-codes``; ``pages``: the wizard's HTML pages.
"""
