"""Op families, one module each. ``labkit.functional`` is the user-facing namespace."""
