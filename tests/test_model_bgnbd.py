"""BG/NBD and Gamma-Gamma by maximum likelihood: published CDNOW results, recovery, Monte Carlo.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``bgnbd_model``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxpipeline.errors import InputError
from cxpipeline.model.bgnbd import (
    BGNBD_PUBLISHED,
    GAMMA_GAMMA_PUBLISHED,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    p_alive,
    p_no_purchase,
    rfm_summary,
    simulate_bgnbd,
)
from cxpipeline.panel import build_panel
from tests.conftest import transactions_frame

CDNOW = Path(__file__).parent / "data" / "cdnow_sample_summary.csv"  # from lifetimes 0.11.3 (MIT), see cdnow_sample.LICENSE.txt


@pytest.fixture(scope="module")
def cdnow():
    return pd.read_csv(CDNOW)


def _hand_ll(r, alpha, a, b, x, t_x, T):
    """Eq. (6) of Fader, Hardie & Lee (2005), written out with math.lgamma, one customer."""
    a1 = math.lgamma(r + x) + r * math.log(alpha) - math.lgamma(r)
    a2 = math.lgamma(a + b) + math.lgamma(b + x) - math.lgamma(b) - math.lgamma(a + b + x)
    a3 = (alpha + T) ** -(r + x)
    a4 = (a / (b + x - 1)) * (alpha + t_x) ** -(r + x) if x > 0 else 0.0
    return a1 + a2 + math.log(a3 + a4)


def test_log_likelihood_matches_the_published_formula_by_hand():
    rows = [(0, 0.0, 38.86), (2, 30.43, 38.86), (1, 1.71, 38.86), (14, 35.0, 33.57)]
    p = BGNBD_PUBLISHED
    for x, t_x, T in rows:
        expected = _hand_ll(p["r"], p["alpha"], p["a"], p["b"], x, t_x, T)
        got = bgnbd_log_likelihood(p, np.array([x]), np.array([t_x]), np.array([T]))
        assert got == pytest.approx(expected, abs=1e-10)


def test_cdnow_published_log_likelihood_and_parameters_are_reproduced(cdnow):
    # Published: LL = -9582.4 at r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 (weeks).
    ll = bgnbd_log_likelihood(BGNBD_PUBLISHED, cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert ll == pytest.approx(-9582.4, abs=0.05)
    fit = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert fit.converged and fit.customers == 2357
    for name, value in BGNBD_PUBLISHED.items():
        assert getattr(fit, name) == pytest.approx(value, abs=0.0015), name
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert fit.log_likelihood >= ll - 1e-6  # the MLE is at least as likely as the rounded published values


def test_cdnow_conditional_expectation_of_the_paper():
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases in the next 39 weeks.
    e = expected_purchases(BGNBD_PUBLISHED, np.array([2.0]), np.array([30.43]), np.array([38.86]), 39)
    assert e[0] == pytest.approx(1.226, abs=0.0005)


def test_cdnow_gamma_gamma_published_parameters(cdnow):
    repeat = cdnow.loc[cdnow["x"] > 0]
    fit = fit_gamma_gamma(repeat["x"], repeat["zbar"])
    assert fit.customers == 946
    assert fit.p == pytest.approx(GAMMA_GAMMA_PUBLISHED["p"], abs=0.01)
    assert fit.q == pytest.approx(GAMMA_GAMMA_PUBLISHED["q"], abs=0.01)
    assert fit.gamma == pytest.approx(GAMMA_GAMMA_PUBLISHED["gamma"], abs=0.02)
    assert fit.log_likelihood >= gamma_gamma_log_likelihood(GAMMA_GAMMA_PUBLISHED, repeat["x"], repeat["zbar"])


def test_expected_spend_is_the_weighted_mean_of_population_and_customer():
    p, q, g = 6.25, 3.74, 15.44
    population = p * g / (q - 1)
    weight = p * 4 / (p * 4 + q - 1)
    got = expected_spend(GAMMA_GAMMA_PUBLISHED, np.array([4.0]), np.array([20.0]))[0]
    assert got == pytest.approx((1 - weight) * population + weight * 20.0, rel=1e-12)
    assert expected_spend(GAMMA_GAMMA_PUBLISHED, np.array([1.0]), np.array([-5.0]))[0] == pytest.approx(
        p * g / (p + q - 1))  # net-negative mean floored at 0


@pytest.fixture(scope="module")
def simulated():
    T = np.random.default_rng(11).uniform(32, 39, 120_000)  # CDNOW-like ages, weeks
    return simulate_bgnbd(BGNBD_PUBLISHED, T, horizon=39, seed=5)


def test_parameters_are_recovered_from_simulated_data(simulated):
    fit = fit_bgnbd(simulated["frequency"], simulated["recency"], simulated["T"])
    assert fit.converged
    assert fit.r == pytest.approx(0.243, rel=0.06)
    assert fit.alpha == pytest.approx(4.414, rel=0.08)
    assert fit.a == pytest.approx(0.793, rel=0.12)
    assert fit.b == pytest.approx(2.426, rel=0.15)
    # the fit is at least as likely as the truth on its own data
    truth = bgnbd_log_likelihood(BGNBD_PUBLISHED, simulated["frequency"], simulated["recency"], simulated["T"])
    assert fit.log_likelihood >= truth


def test_probabilities_match_monte_carlo(simulated):
    x, t_x, T = simulated["frequency"], simulated["recency"], simulated["T"]
    quiet = (simulated["future_purchases"] == 0).to_numpy()
    p = p_no_purchase(BGNBD_PUBLISHED, x, t_x, T, 39)
    assert p.mean() == pytest.approx(quiet.mean(), abs=0.005)
    alive = p_alive(BGNBD_PUBLISHED, x, t_x, T)
    assert alive.mean() == pytest.approx(simulated["alive_at_T"].mean(), abs=0.005)
    expected = expected_purchases(BGNBD_PUBLISHED, x, t_x, T, 39)
    assert expected.mean() == pytest.approx(simulated["future_purchases"].mean(), rel=0.03)
    # calibration by decile of the predicted probability: every decile within 2 points
    order = np.argsort(p, kind="stable")
    for idx in np.array_split(order, 10):
        assert abs(p[idx].mean() - quiet[idx].mean()) < 0.02
    # shorter horizon, H = 8 weeks
    short = simulate_bgnbd(BGNBD_PUBLISHED, T.to_numpy()[:60_000], horizon=8, seed=9)
    p8 = p_no_purchase(BGNBD_PUBLISHED, short["frequency"], short["recency"], short["T"], 8)
    assert p8.mean() == pytest.approx((short["future_purchases"] == 0).mean(), abs=0.005)


def test_no_repeat_customer_means_no_purchase_for_alive_probability_one():
    # x = 0: P(alive) = 1, P(no purchase in H) = ((alpha + T) / (alpha + T + H))^r exactly.
    p = BGNBD_PUBLISHED
    got = p_no_purchase(p, np.array([0.0]), np.array([0.0]), np.array([10.0]), 5.0)[0]
    assert got == pytest.approx(((p["alpha"] + 10) / (p["alpha"] + 15)) ** p["r"], rel=1e-12)
    assert p_alive(p, np.array([0.0]), np.array([0.0]), np.array([10.0]))[0] == 1.0
    # more time since the last purchase, same x: lower P(alive), higher P(no purchase)
    a = p_no_purchase(p, np.array([3.0, 3.0]), np.array([30.0, 5.0]), np.array([32.0, 32.0]), 10)
    assert a[0] < a[1]


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(3)
    n_customers = 40_000
    p, q, g = 6.25, 3.74, 15.44
    nu = rng.gamma(q, 1.0 / g, n_customers)
    n = rng.integers(1, 8, n_customers).astype(float)
    totals = rng.gamma(p * n, 1.0 / nu)  # sum of n Gamma(p, nu) order values
    fit = fit_gamma_gamma(n, totals / n)
    assert fit.p == pytest.approx(p, rel=0.1)
    assert fit.q == pytest.approx(q, rel=0.1)
    assert fit.gamma == pytest.approx(g, rel=0.15)


def test_fit_refuses_too_few_customers_and_no_repeat_purchases():
    with pytest.raises(InputError, match="need 50"):
        fit_bgnbd(np.ones(10), np.ones(10), np.full(10, 2.0))
    with pytest.raises(InputError, match="No customer bought twice"):
        fit_bgnbd(np.zeros(100), np.zeros(100), np.full(100, 5.0))
    with pytest.raises(InputError, match="Gamma-Gamma"):
        fit_gamma_gamma(np.ones(10), np.ones(10))


def test_rfm_summary_from_a_hand_built_panel_and_no_look_ahead():
    rows = [
        ("a", "2025-01-10", 100.0), ("a", "2025-01-20", 50.0), ("a", "2025-03-11", 30.0),
        ("b", "2025-02-01", 80.0), ("b", "2025-02-03", -20.0),  # a return: not an order
        ("c", "2025-03-31 18:00", 10.0),
    ]
    panel = build_panel(transactions_frame(rows), "month")
    out = rfm_summary(panel, "2025-04-01").set_index("customer_id")
    assert list(out.index) == ["a", "b", "c"]
    assert out.loc["a", "frequency"] == 2 and out.loc["a", "n_orders"] == 3
    assert out.loc["a", "recency"] == pytest.approx(60.0)  # Jan 10 -> Mar 11
    assert out.loc["a", "T"] == pytest.approx(81.0)  # Jan 10 -> Apr 1
    assert out.loc["a", "monetary_value"] == pytest.approx(60.0)
    assert out.loc["b", "frequency"] == 0 and out.loc["b", "monetary_value"] == pytest.approx(60.0)
    assert out.loc["c", "T"] == pytest.approx(0.25)
    # a purchase on or after the observation end changes nothing before it
    later = build_panel(transactions_frame(rows + [("a", "2025-04-01", 5.0), ("d", "2025-05-02", 9.0)]), "month")
    pd.testing.assert_frame_equal(rfm_summary(later, "2025-04-01"), rfm_summary(panel, "2025-04-01"))
    # custom column names
    renamed = panel.rename(columns={"customer_id": "cid", "count_orders": "n"})
    alt = rfm_summary(renamed, "2025-04-01", customer_id_col="cid", orders_col="n")
    assert list(alt.columns)[0] == "cid" and alt["frequency"].tolist() == out["frequency"].tolist()


def test_compress_counts_identical_rows_in_np_unique_order():
    from cxpipeline.model.bgnbd import _compress

    x = np.array([2.0, 0.0, 2.0, 1.0, 0.0, 2.0])
    t = np.array([0.5, 0.0, 0.5, 0.25, 0.0, 0.125])
    (xs, ts), w = _compress([x, t], max_rows=10)
    assert xs.tolist() == [0.0, 1.0, 2.0, 2.0]
    assert ts.tolist() == [0.0, 0.25, 0.125, 0.5]
    assert w.tolist() == [2.0, 1.0, 1.0, 2.0]
    rng = np.random.default_rng(3)
    cols = [rng.integers(0, 4, 500).astype("float64"), np.round(rng.random(500), 1), np.round(rng.random(500), 1)]
    got, weights = _compress(cols, max_rows=400)  # evenly spaced 400 of 500 rows first
    keep = np.linspace(0, 499, 400).astype(np.int64)
    unique, counts = np.unique(np.column_stack([c[keep] for c in cols]), axis=0, return_counts=True)
    assert np.array_equal(np.column_stack(got), unique) and np.array_equal(weights, counts)


def test_gamma_gamma_objective_is_the_row_likelihood_and_its_gradient():
    from scipy.optimize import approx_fprime

    from cxpipeline.model.bgnbd import _gg_neg_ll_and_grad, _gg_row_ll

    rng = np.random.default_rng(5)
    n = rng.integers(1, 6, 300).astype("float64")
    m = rng.gamma(2.0, 1.0, 300)
    w = rng.integers(1, 3, 300).astype("float64")
    nu, ni = np.unique(n, return_inverse=True)
    args = (n, m, w, w.sum(), nu, ni, np.log(n), np.log(m), m * n)
    theta = np.log([1.7, 2.9, 0.8])
    value, grad = _gg_neg_ll_and_grad(theta, *args)
    # the same per-row numbers as the public likelihood's formula, bit for bit
    assert value == -np.dot(w, _gg_row_ll(*np.exp(theta), n, m)) / w.sum()
    numeric = approx_fprime(theta, lambda th: _gg_neg_ll_and_grad(th, *args)[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)
