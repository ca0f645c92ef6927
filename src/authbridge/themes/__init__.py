"""Themes: the title, logo and stylesheet the wizard and the connect pages show, per environment.
A slice: ``repository``, ``service``, ``endpoints`` (``/v1/themes``)."""
