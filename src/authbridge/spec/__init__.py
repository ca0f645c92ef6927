"""Pure OAuth specification logic, one module per RFC.

Everything here takes values and returns values: no network, no storage and no clock (callers
pass ``now``). Import the submodules directly, e.g. ``from authbridge.spec import rfc6749``.
"""
