"""Hypothesis profiles. CI is derandomised (same examples every run); SYMDIFF_FUZZ=long selects the
maintainers' long run. The example counts live in the tests that use them (see fuzzing.py)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile(
    "long", derandomize=False, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile("long" if os.environ.get("SYMDIFF_FUZZ") == "long" else "ci")
