"""The Student Success policy pack: rules in ``policies.rules``, the pack in ``__main__.py``."""
