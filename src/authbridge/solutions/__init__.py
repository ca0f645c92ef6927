"""Solutions: what a host's integration needs from an end user (auth slots for connectors,
config slots for settings), and the instances that fill them. A slice:

* ``specs``: a solution's specification (YAML or JSON) and its checks; ``rules``: the shared
  rules of slots and instances (reads, ownership, audit); ``instances``: creating, updating and
  listing instances; ``service``: applying a solution (create or update), listing, deleting;
* ``repository``: the tables; ``schemas`` and ``endpoints``: the REST API (the reference's
  camelCase); ``cli``: ``authbridge solutions``. GraphQL's solution types and mutations
  (``api/graphql``) call ``service`` too.
"""
