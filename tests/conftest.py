"""Shared test configuration: Hypothesis profiles and fixtures."""

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile("ci")


@pytest.fixture
def rng():
    """A seeded generator, fresh for each test."""
    return np.random.default_rng(12345)
