"""Label-free purchase models: BG/NBD (purchases and dropout) and Gamma-Gamma (spend per order).

One module of ~590 lines on purpose: the two models' likelihoods, their closed-form predictions
and the per-customer summary they are fitted on are read together against the papers' formulas.

Both are fitted by maximum likelihood with scipy on one row per customer; neither needs a
labelled outcome window, so they work with any history and any horizon.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way")
    While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``
    (shape ``r``, rate ``alpha``); after every purchase they drop out for good with probability
    ``p ~ Beta(a, b)``. Per customer the model needs ``x`` (repeat purchases: orders after the
    first), ``t_x`` (time from the first to the last purchase) and ``T`` (time from the first
    purchase to the observation end). Times are in days here; ``alpha`` is in the same unit.

Gamma-Gamma (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value")
    A customer's order values are Gamma(p, nu) with ``nu ~ Gamma(q, gamma)`` across customers,
    independent of the purchase process. Per customer it needs the number of orders ``n`` and
    their mean value ``m``. Here every order counts (the first one too, and ``m`` is net revenue
    per order): the monthly panel cannot split the first order's value from later ones, and
    using it gives every customer, one-time buyers included, a spend estimate.

The formulas (all conditional on a customer's history):

* ``P(alive) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))``
* ``P(no purchase in the next H) = 1 - P(alive) (1 - ((alpha + T) / (alpha + T + H))^(r + x))``
  (given alive, ``lambda`` is Gamma(r + x, alpha + T); a customer who buys nothing cannot drop
  out, so the window is empty with probability ``E[exp(-lambda H)]``);
* expected purchases in the next H: eq. (10) of the 2005 paper (Gauss hypergeometric 2F1);
* expected spend per order: ``p (gamma + n m) / (p n + q - 1)``.

The data layout follows PyMC-Marketing's ``clv/utils.py``: a DataFrame in, a DataFrame out, the
column names as arguments and the observation end as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from cxpipeline.errors import InputError

__all__ = [
    "BGNBD_PUBLISHED",
    "GAMMA_GAMMA_PUBLISHED",
    "MIN_CUSTOMERS",
    "BGNBDParams",
    "GammaGammaParams",
    "rfm_summary",
    "rfm_from_features",
    "bgnbd_log_likelihood",
    "fit_bgnbd",
    "p_alive",
    "p_no_purchase",
    "expected_purchases",
    "gamma_gamma_log_likelihood",
    "fit_gamma_gamma",
    "expected_spend",
    "predicted_value",
    "simulate_bgnbd",
    "LatentModel",
    "fit_latent",
]

#: CDNOW 1/10 sample, weeks (Fader, Hardie & Lee 2005, table 1; log-likelihood -9582.4).
BGNBD_PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
#: CDNOW 1/10 sample, repeat customers (Fader & Hardie 2013).
GAMMA_GAMMA_PUBLISHED = {"p": 6.25, "q": 3.74, "gamma": 15.44}
#: Fewer customers than this: no fit (the four parameters would be noise).
MIN_CUSTOMERS = 50
#: Above this many customers the fit uses an evenly spaced subset (deterministic, no seed).
MAX_FIT_CUSTOMERS = 200_000

_DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters (``alpha`` in the time unit of the data, days in cxpipeline)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    customers: int = 0
    converged: bool = True

    def as_dict(self) -> dict:
        return {"r": round(self.r, 6), "alpha": round(self.alpha, 6), "a": round(self.a, 6),
                "b": round(self.b, 6), "log_likelihood": round(self.log_likelihood, 3),
                "customers": int(self.customers), "converged": bool(self.converged)}


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (``gamma`` in the currency of the data)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    customers: int = 0
    converged: bool = True
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"p": round(self.p, 6), "q": round(self.q, 6), "gamma": round(self.gamma, 6),
                "log_likelihood": round(self.log_likelihood, 3), "customers": int(self.customers),
                "converged": bool(self.converged),
                "mean_spend_per_order": (round(self.p * self.gamma / (self.q - 1), 4) if self.q > 1 else None)}


# --------------------------------------------------------------------------------------------
# Data: one row per customer
# --------------------------------------------------------------------------------------------


def rfm_summary(
    panel: pd.DataFrame,
    observation_end: date | datetime | pd.Timestamp | str,
    *,
    customer_id_col: str = "customer_id",
    period_start_col: str = "period_start",
    revenue_col: str = "revenue",
    orders_col: str = "count_orders",
    first_order_col: str = "first_order_at",
    last_order_col: str = "last_order_at",
) -> pd.DataFrame:
    """Per-customer BG/NBD and Gamma-Gamma inputs from a monthly panel, using only data before
    ``observation_end``.

    Parameters
    ----------
    panel
        Customer x month rows: revenue (net), order count, first and last order instant of the
        month (``cxpipeline.panel.build_panel(transactions, "month")``).
    observation_end
        The instant the summary describes (midnight at the start of a day). Rows with
        ``period_start >= observation_end`` are ignored; a kept row holding a purchase on or
        after it is an error (build the panel with ``end=observation_end``).
    customer_id_col, period_start_col, revenue_col, orders_col, first_order_col, last_order_col
        Column names in ``panel``.

    Returns
    -------
    pandas.DataFrame
        One row per customer with a purchase before ``observation_end`` (sorted by id), columns
        ``customer_id``, ``frequency`` (x, repeat orders), ``recency`` (t_x, days from the first
        to the last purchase), ``T`` (days from the first purchase to ``observation_end``),
        ``n_orders`` (x + 1) and ``monetary_value`` (net revenue per order, all orders).
    """
    from cxpipeline.model.features import snapshot_features

    names = {customer_id_col: "customer_id", period_start_col: "period_start", revenue_col: "revenue",
             orders_col: "count_orders", first_order_col: "first_order_at", last_order_col: "last_order_at"}
    missing = [c for c in names if c not in panel.columns]
    if missing:
        raise InputError(f"The panel lacks column(s) {', '.join(missing)}.", where="rfm_summary",
                         fix="Pass the column names of your panel (customer_id_col=..., etc.).")
    frame = panel[list(names)].rename(columns=names)
    for column in ("gross_revenue", "returns"):  # not used by the summary; snapshot_features checks them
        frame[column] = 0.0
    features = snapshot_features(frame, observation_end)
    out = rfm_from_features(features)
    return out.reset_index().rename(columns={"customer_id": customer_id_col})


def rfm_from_features(features: pd.DataFrame) -> pd.DataFrame:
    """BG/NBD and Gamma-Gamma inputs from :func:`cxpipeline.model.features.snapshot_features`.

    Returns
    -------
    pandas.DataFrame
        Same index; ``frequency``, ``recency``, ``T``, ``n_orders``, ``monetary_value``.
    """
    orders = features["orders_total"].to_numpy("float64")
    tenure = np.maximum(features["tenure_days"].to_numpy("float64"), 0.0)
    recency_days = np.maximum(features["recency_days"].to_numpy("float64"), 0.0)
    t_x = np.clip(tenure - recency_days, 0.0, tenure)
    with np.errstate(divide="ignore", invalid="ignore"):
        monetary = np.where(orders > 0, features["historical_value"].to_numpy("float64") / orders, 0.0)
    return pd.DataFrame({"frequency": np.maximum(orders - 1, 0.0), "recency": t_x, "T": tenure,
                         "n_orders": orders, "monetary_value": monetary}, index=features.index)


def _arrays(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype="float64")
    t_x = np.asarray(t_x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    if x.shape != t_x.shape or x.shape != T.shape:
        raise ValueError(f"x, t_x and T must have the same shape, got {x.shape}, {t_x.shape}, {T.shape}")
    return x, t_x, T


# --------------------------------------------------------------------------------------------
# BG/NBD
# --------------------------------------------------------------------------------------------


def _bgnbd_terms(r, alpha, a, b, x, t_x, T):
    """log A3, log A4 (``-inf`` where x = 0) and their log-sum, per row."""
    log_a3 = -(r + x) * np.log(alpha + T)
    has = x > 0
    safe = np.where(has, b + x - 1, 1.0)
    log_a4 = np.where(has, np.log(a) - np.log(safe) - (r + x) * np.log(alpha + t_x), -np.inf)
    return log_a3, log_a4, np.logaddexp(log_a3, log_a4)


def bgnbd_log_likelihood(params: dict | BGNBDParams, x, t_x, T, weights=None) -> float:
    """Total BG/NBD log-likelihood (eq. 6 of Fader, Hardie & Lee 2005) of the rows.

    Parameters
    ----------
    params
        ``r``, ``alpha``, ``a``, ``b`` (a dict or :class:`BGNBDParams`).
    x, t_x, T
        Repeat purchases, time of the last purchase and age at the observation end (one unit).
    weights
        Optional count of customers per row (identical rows compressed).
    """
    r, alpha, a, b = _unpack(params)
    x, t_x, T = _arrays(x, t_x, T)
    ll = _bgnbd_row_ll(r, alpha, a, b, x, t_x, T)
    return float(ll.sum() if weights is None else (ll * np.asarray(weights, dtype="float64")).sum())


def _unpack(params) -> tuple[float, float, float, float]:
    if isinstance(params, BGNBDParams):
        return params.r, params.alpha, params.a, params.b
    return float(params["r"]), float(params["alpha"]), float(params["a"]), float(params["b"])


def _bgnbd_row_ll(r, alpha, a, b, x, t_x, T):
    _, _, log_sum = _bgnbd_terms(r, alpha, a, b, x, t_x, T)
    return (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
            + special.betaln(a, b + x) - special.betaln(a, b) + log_sum)


def _bgnbd_neg_ll_and_grad(theta, x, t_x, T, w, total, xu, xi):
    """Mean negative log-likelihood and its gradient in log parameters.

    The special functions depend on ``x`` only: they are evaluated on its few distinct values
    ``xu`` and gathered with ``xi`` (``xu[xi] == x``), ~10x faster than per row.
    """
    r, alpha, a, b = np.exp(theta)
    has = x > 0
    log_a3 = -(r + x) * np.log(alpha + T)
    inv_bx1_u = np.where(xu > 0, 1.0 / np.where(xu > 0, b + xu - 1, 1.0), 0.0)
    log_a4 = np.where(has, np.log(a) + np.log(np.where(has, b + x - 1, 1.0)) * -1.0 - (r + x) * np.log(alpha + t_x),
                      -np.inf)
    log_sum = np.logaddexp(log_a3, log_a4)
    w4 = np.exp(log_a4 - log_sum)  # 0 where x = 0
    w3 = 1.0 - w4
    const_u = special.gammaln(r + xu) - special.gammaln(r) + special.betaln(a, b + xu) - special.betaln(a, b)
    ll = const_u[xi] + r * np.log(alpha) + log_sum
    la_T = np.log(alpha + T)
    la_tx = np.log(alpha + t_x)
    dg_ab = special.digamma(a + b)
    d_r = (special.digamma(r + xu) - special.digamma(r))[xi] + np.log(alpha) - w3 * la_T - w4 * la_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    d_a = (dg_ab - special.digamma(a + b + xu))[xi] + w4 / a
    d_b = (dg_ab + special.digamma(b + xu) - special.digamma(b) - special.digamma(a + b + xu))[xi] \
        - w4 * inv_bx1_u[xi]
    value = -np.dot(w, ll) / total
    if not np.isfinite(value):
        return 1e10, np.zeros(4)
    grad = np.array([np.dot(w, d_r) * r, np.dot(w, d_alpha) * alpha, np.dot(w, d_a) * a, np.dot(w, d_b) * b])
    return value, -grad / total


def _compress(columns: list[np.ndarray], max_rows: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Identical rows counted once (weights); an evenly spaced subset above ``max_rows``."""
    n = len(columns[0])
    if n > max_rows:
        keep = np.linspace(0, n - 1, max_rows).astype(np.int64)
        columns = [c[keep] for c in columns]
    # The rows of np.unique(axis=0) (sorted by the first column, then the next...) from a
    # lexsort of the columns: the same rows in the same order, ~3x faster than sorting them as
    # structured records.
    columns = [np.asarray(c, dtype="float64") for c in columns]  # np.column_stack's common type
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    starts = np.zeros(len(order), dtype=bool)
    if len(starts):
        starts[0] = True
        for c in ordered:
            starts[1:] |= c[1:] != c[:-1]
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, len(starts)))
    return [c[first] for c in ordered], counts.astype("float64")


def fit_bgnbd(x, t_x, T, *, max_customers: int = MAX_FIT_CUSTOMERS) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters (L-BFGS-B on log parameters, analytic gradient).

    Parameters
    ----------
    x, t_x, T
        Repeat purchases, time of the last purchase since the first, age at the observation end.
    max_customers
        Above this many customers an evenly spaced subset (in the given order) is used.

    Raises
    ------
    InputError
        With fewer than :data:`MIN_CUSTOMERS` customers, or when nobody bought twice (the
        dropout process is then not identified).
    """
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) < MIN_CUSTOMERS:
        raise InputError(f"Only {len(x)} customer(s) to fit the BG/NBD model (need {MIN_CUSTOMERS}).",
                         where="BG/NBD fit", fix="Use a longer history or a larger customer base.")
    if not (x > 0).any():
        raise InputError("No customer bought twice, so the BG/NBD purchase model cannot be fitted.",
                         where="BG/NBD fit", fix="Use a longer history (repeat purchases are needed).")
    if (t_x > T + 1e-9).any() or (T < 0).any() or (x < 0).any():
        raise InputError("BG/NBD inputs are inconsistent (need 0 <= t_x <= T and x >= 0).",
                         where="BG/NBD fit", fix="Derive x, t_x, T with rfm_summary().")
    scale = float(np.mean(T)) or 1.0  # fit on O(1) times; alpha scales back exactly
    (xs, txs, Ts), w = _compress([x, np.round(t_x / scale, 6), np.round(T / scale, 6)], max_customers)
    total = float(w.sum())
    xu, xi = np.unique(xs, return_inverse=True)
    args = (xs, txs, Ts, w, total, xu, xi)
    best = None
    # A second start only when the first did not converge: one start was enough on CDNOW, the
    # simulated samples and the demo, and each start costs ~20 likelihood evaluations.
    for start in ([0.0, 0.0, 0.0, 0.0], [np.log(0.5), np.log(0.2), np.log(0.8), np.log(2.5)]):
        with threadpool_limits(limits=1, user_api="blas"):  # L-BFGS-B on 4 parameters: threads only cost
            res = optimize.minimize(_bgnbd_neg_ll_and_grad, np.array(start), args=args,
                                    jac=True, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4,
                                    options={"maxiter": 500, "gtol": 1e-8, "ftol": 1e-13})
        if best is None or res.fun < best.fun:
            best = res
        if best.success:
            break
    r, alpha, a, b = np.exp(best.x)
    params = BGNBDParams(float(r), float(alpha * scale), float(a), float(b))
    ll = bgnbd_log_likelihood(params, x, t_x, T)
    return BGNBDParams(params.r, params.alpha, params.a, params.b, log_likelihood=ll,
                       customers=int(len(x)), converged=bool(best.success))


def p_alive(params: dict | BGNBDParams, x, t_x, T) -> np.ndarray:
    """P(the customer is still active at the observation end | x, t_x, T)."""
    r, alpha, a, b = _unpack(params)
    x, t_x, T = _arrays(x, t_x, T)
    log_a3, log_a4, _ = _bgnbd_terms(r, alpha, a, b, x, t_x, T)
    # 1 / (1 + A4/A3); A4 = 0 without repeat purchases
    return 1.0 / (1.0 + np.exp(np.minimum(log_a4 - log_a3, 700.0)))


def p_no_purchase(params: dict | BGNBDParams, x, t_x, T, horizon) -> np.ndarray:
    """P(no purchase in ``(T, T + horizon]`` | x, t_x, T): the label-free P(at risk).

    ``1 - P(alive) (1 - ((alpha + T) / (alpha + T + horizon))^(r + x))``.
    """
    r, alpha, _, _ = _unpack(params)
    x, t_x, T = _arrays(x, t_x, T)
    horizon = np.asarray(horizon, dtype="float64")
    stay_quiet = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
    return np.clip(1.0 - p_alive(params, x, t_x, T) * (1.0 - stay_quiet), 0.0, 1.0)


def expected_purchases(params: dict | BGNBDParams, x, t_x, T, horizon) -> np.ndarray:
    """Expected purchases in ``(T, T + horizon]`` | x, t_x, T (eq. 10 of the 2005 paper)."""
    r, alpha, a, b = _unpack(params)
    x, t_x, T = _arrays(x, t_x, T)
    t = np.asarray(horizon, dtype="float64") * np.ones_like(T)
    if abs(a - 1.0) < 1e-9:
        a = 1.0 + 1e-9  # the closed form has a removable singularity at a = 1
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
    numerator = (a + b + x - 1) / (a - 1) * (1.0 - ratio * hyp)
    log_a3, log_a4, _ = _bgnbd_terms(r, alpha, a, b, x, t_x, T)
    value = numerator / (1.0 + np.exp(np.minimum(log_a4 - log_a3, 700.0)))
    return np.maximum(np.nan_to_num(value, nan=0.0, posinf=0.0), 0.0)


# --------------------------------------------------------------------------------------------
# Gamma-Gamma
# --------------------------------------------------------------------------------------------


def gamma_gamma_log_likelihood(params: dict | GammaGammaParams, n, m, weights=None) -> float:
    """Total Gamma-Gamma log-likelihood of customers with ``n`` orders of mean value ``m`` > 0."""
    p, q, g = _unpack_gg(params)
    n = np.asarray(n, dtype="float64")
    m = np.asarray(m, dtype="float64")
    ll = _gg_row_ll(p, q, g, n, m)
    return float(ll.sum() if weights is None else (ll * np.asarray(weights, dtype="float64")).sum())


def _unpack_gg(params) -> tuple[float, float, float]:
    if isinstance(params, GammaGammaParams):
        return params.p, params.q, params.gamma
    return float(params["p"]), float(params["q"]), float(params["gamma"])


def _gg_row_ll(p, q, g, n, m):
    px = p * n
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(g)
            + (px - 1) * np.log(m) + px * np.log(n) - (px + q) * np.log(g + m * n))


def _gg_neg_ll_and_grad(theta, n, m, w, total, nu, ni, log_n, log_m, mn):
    """Mean negative log-likelihood and its gradient in log parameters.

    As for BG/NBD, the special functions depend on ``n`` only: evaluated on its distinct values
    ``nu`` and gathered with ``ni`` (``nu[ni] == n``); ``log_n``, ``log_m`` and ``mn = m n`` do
    not depend on the parameters. Every row's terms are the same numbers, in the same order, as
    :func:`_gg_row_ll` and the per-row formulas give.
    """
    p, q, g = np.exp(theta)
    px = p * n
    pu = p * nu
    log_gmn = np.log(g + mn)
    ll = ((special.gammaln(pu + q) - special.gammaln(pu))[ni] - special.gammaln(q) + q * np.log(g)
          + (px - 1) * log_m + px * log_n - (px + q) * log_gmn)
    dg_pxq = special.digamma(pu + q)
    d_p = n * ((dg_pxq - special.digamma(pu))[ni] + log_m + log_n - log_gmn)
    d_q = dg_pxq[ni] - special.digamma(q) + np.log(g) - log_gmn
    d_g = q / g - (px + q) / (g + mn)
    value = -np.dot(w, ll) / total
    if not np.isfinite(value):
        return 1e10, np.zeros(3)
    grad = np.array([np.dot(w, d_p) * p, np.dot(w, d_q) * q, np.dot(w, d_g) * g])
    return value, -grad / total


def fit_gamma_gamma(n, m, *, max_customers: int = MAX_FIT_CUSTOMERS) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from order counts and mean order values.

    Customers with a mean order value <= 0 (net returns) carry no information on a positive
    spend distribution and are left out of the fit (they still get a prediction).

    Raises
    ------
    InputError
        With fewer than :data:`MIN_CUSTOMERS` customers with a positive mean order value.
    """
    n = np.asarray(n, dtype="float64")
    m = np.asarray(m, dtype="float64")
    keep = (n > 0) & (m > 0) & np.isfinite(m)
    if keep.sum() < MIN_CUSTOMERS:
        raise InputError(f"Only {int(keep.sum())} customer(s) with a positive spend per order to fit the "
                         f"Gamma-Gamma model (need {MIN_CUSTOMERS}).", where="Gamma-Gamma fit",
                         fix="Use a longer history or a larger customer base.")
    n, m = n[keep], m[keep]
    scale = float(np.mean(m))
    (ns, ms), w = _compress([n, m / scale], max_customers)
    total = float(w.sum())
    nu, ni = np.unique(ns, return_inverse=True)
    args = (ns, ms, w, total, nu, ni, np.log(ns), np.log(ms), ms * ns)
    with threadpool_limits(limits=1, user_api="blas"):
        res = optimize.minimize(_gg_neg_ll_and_grad, np.array([np.log(2.0), np.log(3.0), np.log(2.0)]),
                                args=args, jac=True, method="L-BFGS-B",
                                bounds=[(-12.0, 12.0), (np.log(1.0001), 12.0), (-12.0, 12.0)],
                                options={"maxiter": 500, "gtol": 1e-8, "ftol": 1e-13})
    p, q, g = np.exp(res.x)
    params = GammaGammaParams(float(p), float(q), float(g * scale))
    return GammaGammaParams(params.p, params.q, params.gamma,
                            log_likelihood=gamma_gamma_log_likelihood(params, n, m),
                            customers=int(len(n)), converged=bool(res.success))


def expected_spend(params: dict | GammaGammaParams, n, m) -> np.ndarray:
    """E[value of a future order | n orders of mean value m] = p (gamma + n m) / (p n + q - 1).

    A weighted mean of the population mean ``p gamma / (q - 1)`` and the customer's own mean;
    ``m`` is floored at 0 (a customer whose returns exceed purchases is expected to spend the
    shrunk population amount, not a negative one).
    """
    p, q, g = _unpack_gg(params)
    n = np.asarray(n, dtype="float64")
    m = np.maximum(np.asarray(m, dtype="float64"), 0.0)
    return p * (g + n * m) / (p * n + q - 1.0)


def predicted_value(bgnbd: BGNBDParams, gamma_gamma: GammaGammaParams, rfm: pd.DataFrame,
                    horizon_days: float) -> np.ndarray:
    """Expected net revenue in the next ``horizon_days``: expected purchases x expected spend."""
    purchases = expected_purchases(bgnbd, rfm["frequency"], rfm["recency"], rfm["T"], horizon_days)
    spend = expected_spend(gamma_gamma, rfm["n_orders"], rfm["monetary_value"])
    return purchases * spend


# --------------------------------------------------------------------------------------------
# Both models fitted at one instant, applied to snapshot features
# --------------------------------------------------------------------------------------------


@dataclass
class LatentModel:
    """BG/NBD and Gamma-Gamma fitted at one instant (either may be missing, ``messages`` say why).

    The parameters describe the population; they can be applied to the features of any customer
    at any snapshot (``x``, ``t_x``, ``T`` measured at that snapshot).
    """

    bgnbd: BGNBDParams | None = None
    gamma_gamma: GammaGammaParams | None = None
    messages: list[str] = field(default_factory=list)

    def p_no_purchase(self, features: pd.DataFrame, horizon_days: float) -> np.ndarray | None:
        """P(no purchase in the next ``horizon_days``) per row of snapshot features."""
        if self.bgnbd is None:
            return None
        rfm = rfm_from_features(features)
        return p_no_purchase(self.bgnbd, rfm["frequency"], rfm["recency"], rfm["T"], horizon_days)

    def p_alive(self, features: pd.DataFrame) -> np.ndarray | None:
        """P(still active) per row of snapshot features."""
        if self.bgnbd is None:
            return None
        rfm = rfm_from_features(features)
        return p_alive(self.bgnbd, rfm["frequency"], rfm["recency"], rfm["T"])

    def value(self, features: pd.DataFrame, horizon_days: float) -> np.ndarray | None:
        """Expected net revenue in the next ``horizon_days`` (rounded to cents), or None."""
        if self.bgnbd is None or self.gamma_gamma is None:
            return None
        return np.round(predicted_value(self.bgnbd, self.gamma_gamma, rfm_from_features(features),
                                        horizon_days), 2)

    def report(self) -> dict:
        return {"bgnbd": None if self.bgnbd is None else {**self.bgnbd.as_dict(), "time_unit": "days"},
                "gamma_gamma": None if self.gamma_gamma is None else self.gamma_gamma.as_dict(),
                "messages": list(self.messages)}


def fit_latent(features: pd.DataFrame, *, spend: bool = True) -> LatentModel:
    """Fit BG/NBD and (with ``spend``) Gamma-Gamma on snapshot features (one row per customer,
    data before the snapshot only); a model that cannot be fitted is left out with the reason in
    ``messages``."""
    rfm = rfm_from_features(features)
    out = LatentModel()
    try:
        out.bgnbd = fit_bgnbd(rfm["frequency"], rfm["recency"], rfm["T"])
    except InputError as exc:
        out.messages.append(f"No BG/NBD purchase model: {exc.what}")
    if out.bgnbd is not None and not out.bgnbd.converged:
        out.messages.append("The BG/NBD fit stopped before full convergence; its probabilities are still "
                            "checked in the backtest.")
    if not spend:
        return out
    try:
        out.gamma_gamma = fit_gamma_gamma(rfm["n_orders"], rfm["monetary_value"])
    except InputError as exc:
        out.messages.append(f"No Gamma-Gamma spend model: {exc.what}")
    if out.gamma_gamma is not None and out.gamma_gamma.q <= 1.0001:
        out.messages.append("The Gamma-Gamma fit has q at its bound 1 (spend per order too dispersed for a "
                            "finite mean); no Gamma-Gamma value is used.")
        out.gamma_gamma = None
    return out


# --------------------------------------------------------------------------------------------
# Simulation (tests and benchmarks)
# --------------------------------------------------------------------------------------------


def simulate_bgnbd(params: dict, T, horizon: float = 0.0, *, seed: int = 0) -> pd.DataFrame:
    """Customers drawn from a BG/NBD process, observed to ``T`` and followed ``horizon`` more.

    Each customer makes a first purchase at time 0, then buys at rate ``lambda ~ Gamma(r,
    alpha)`` and drops out after each purchase with probability ``p ~ Beta(a, b)``.

    Parameters
    ----------
    params
        ``r``, ``alpha``, ``a``, ``b``.
    T
        Age of each customer at the observation end (one per customer).
    horizon
        Length of the follow-up window after ``T``.

    Returns
    -------
    pandas.DataFrame
        ``frequency`` (x), ``recency`` (t_x), ``T``, ``future_purchases`` in ``(T, T + horizon]``,
        and the latent ``alive_at_T``.
    """
    rng = np.random.default_rng(seed)
    T = np.asarray(T, dtype="float64")
    n = len(T)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], size=n)
    p = rng.beta(params["a"], params["b"], size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    alive_at_t = np.ones(n, dtype=bool)
    now = np.zeros(n)
    active = np.arange(n)
    end = T + horizon
    while active.size:
        with np.errstate(divide="ignore"):
            now[active] += rng.exponential(1.0, size=active.size) / lam[active]
        buys = now[active] <= end[active]
        active = active[buys]
        in_obs = now[active] <= T[active]
        obs = active[in_obs]
        x[obs] += 1
        t_x[obs] = now[obs]
        future[active[~in_obs]] += 1
        dies = rng.random(active.size) < p[active]
        alive_at_t[active[dies & in_obs]] = False
        active = active[~dies]
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "future_purchases": future,
                         "alive_at_T": alive_at_t})
