"""Shared pytest configuration: Hypothesis profiles.

Pick a profile with the environment variable ``TINYGRAD_CNN_HYPOTHESIS_PROFILE``:

* ``ci`` (default): 40 examples per property, no deadline (NumPy timings vary on shared runners).
* ``thorough``: 500 examples per property, for a long soak before a release.
* ``dev``: 10 examples per property, for a quick local loop.

Tests that pin their own ``@settings(max_examples=...)`` keep that count; everything else
follows the profile. Hypothesis' own ``--hypothesis-profile`` option still overrides this.

No autouse state-reset fixture: ``no_grad``/``enable_grad``/``detect_anomaly`` restore the
previous mode on exit (also on exceptions), so tests cannot leak grad or anomaly mode.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("ci"),
    max_examples=500,
    deadline=None,
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=10)

settings.load_profile(os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE", "ci"))
