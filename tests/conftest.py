"""Hypothesis profiles. CI is derandomised (same examples every run); SYMDIFF_FUZZ=long selects the
maintainers' long run. The example counts live in the tests that use them (see fuzzing.py).
Also the C tests' private compile cache."""

import os

import pytest
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


@pytest.fixture(scope="module")
def private_c_cache(tmp_path_factory):
    """Compiled C goes to a fresh cache, not the user's (modules opt in with usefixtures)."""
    old = os.environ.get("SYMDIFF_CACHE")
    os.environ["SYMDIFF_CACHE"] = str(tmp_path_factory.mktemp("symdiff-cache"))
    yield
    if old is None:
        del os.environ["SYMDIFF_CACHE"]
    else:
        os.environ["SYMDIFF_CACHE"] = old
