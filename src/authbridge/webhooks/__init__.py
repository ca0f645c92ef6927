"""Webhooks: the outbox of events about authentications and their delivery to the host's
endpoints, signed with the Standard Webhooks scheme. One slice, over the shared lower layers
(models, vault, the outbound client):

* ``events``: the event types and :func:`events.emit`, which writes an event to the outbox in
  the caller's transaction (authentications, refresh and the lifecycle tasks call it);
* ``repository``: the tables (endpoints, events, deliveries);
* ``delivery``: signing, claiming and sending due deliveries, retries, the payload formats
  (``standard``, ``tray``), pruning the outbox;
* ``service``: endpoint management, reading the outbox, test events (over ``delivery``);
* ``redelivery``: queueing events for an endpoint again;
* ``schemas`` and ``endpoints``: the REST API (``/v1/webhook-endpoints`` with their
  ``redeliver`` routes, ``/v1/webhook-deliveries``, ``/v1/webhook-events``); ``cli``:
  ``authbridge webhooks``.

The adapters (``endpoints``, ``cli``) call ``service`` only; nothing here imports them.
"""
