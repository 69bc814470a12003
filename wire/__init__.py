"""The contract on the broker, shared byte for byte by controller and agent.

Everything here is pure: no I/O, no clocks, no imports of other project
packages. Both sides import these modules, so a change here is a change of
the protocol (see docs/protocol.md for the versioning rules).
"""

__version__ = "0.1.0"
