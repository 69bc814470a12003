"""The device side: dial out, verify every manifest, apply it, report status.

Installs with the base distribution only; it never imports `controller` or
`broker` (tests/test_boundaries.py enforces it), so rendering tools and the
embedded broker stay off the device.
"""
