"""The ``fus`` command."""
