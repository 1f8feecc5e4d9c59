"""Done-means of the gradient-testing toolkit: the one ``check_op`` call catches every planted
backward bug of tests/planted_ops.py within its default example budget (the active Hypothesis
profile's ``max_examples``), and passes every correct version.

The many-seed sweep (no false alarm on any seed, every bug caught on every seed) runs in the
``thorough`` profile; benchmarks/planted_bugs.py prints examples-to-first-failure and seconds.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from planted_ops import PAIRS, run

from tinygrad_cnn.testing import GradcheckError

THOROUGH = os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE") == "thorough"


@pytest.mark.parametrize("bug", list(PAIRS))
def test_planted_bug_is_caught(bug):
    _, buggy, kwargs = PAIRS[bug]
    with pytest.raises(GradcheckError) as info:
        run(buggy, kwargs)
    assert info.value.examples_to_first_failure <= settings.default.max_examples
    assert "Failing input (shrunk)" in str(info.value)


@pytest.mark.parametrize("bug", list(PAIRS))
def test_correct_version_passes(bug):
    correct, _, kwargs = PAIRS[bug]
    run(correct, kwargs)


@pytest.mark.skipif(not THOROUGH, reason="many seeds: TINYGRAD_CNN_HYPOTHESIS_PROFILE=thorough")
@pytest.mark.parametrize("bug", list(PAIRS))
def test_many_seeds(bug):
    correct, buggy, kwargs = PAIRS[bug]
    quick = {**kwargs, "max_examples": 100}
    for seed in range(10):
        run(correct, quick, seed=seed)
        with pytest.raises(GradcheckError):
            run(buggy, quick, seed=seed)
