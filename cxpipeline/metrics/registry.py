"""The metric registry: every metric defined once (name, label, definition), dbt-style.

The board pack, the email summary and ``docs/metrics.md`` all take labels and definitions
from here, so a metric cannot mean one thing in the PDF and another in the email.
``{customers}`` in a label or definition is replaced by the configured terminology.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "metric", "label", "register"]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    definition: str
    unit: str  # "count", "money", "ratio", "days", "number"
    module: str  # where the code lives
    test: str  # where its exact-value test lives

    def render(self, customers: str = "customers", customer: str = "customer") -> "Metric":
        fill = lambda text: text.replace("{customers}", customers).replace("{customer}", customer)  # noqa: E731
        return Metric(self.name, fill(self.label), fill(self.definition), self.unit, self.module, self.test)


METRICS: dict[str, Metric] = {}


def register(*metrics: Metric) -> None:
    for m in metrics:
        if m.name in METRICS:
            raise ValueError(f"metric {m.name!r} registered twice")
        METRICS[m.name] = m


def metric(name: str, customers: str = "customers", customer: str = "customer") -> Metric:
    return METRICS[name].render(customers, customer)


def label(name: str, customers: str = "customers", customer: str = "customer") -> str:
    return metric(name, customers, customer).label


_BRIDGE = ("cxpipeline/metrics/bridge.py", "tests/test_bridge.py")
_LEDGER = ("cxpipeline/metrics/ledger.py", "tests/test_ledger.py")

register(
    Metric("revenue_previous", "Revenue, comparison period", "Net revenue (sales minus returns) of all {customers} in the comparison period P-1.", "money", *_BRIDGE),
    Metric("revenue_current", "Revenue, this period", "Net revenue (sales minus returns) of all {customers} in the period P.", "money", *_BRIDGE),
    Metric("bridge_new", "New {customers}", "{customers} whose first-ever purchase is in P; value = their revenue in P.", "money", *_BRIDGE),
    Metric("bridge_reactivated", "Reactivated {customers}", "{customers} who bought before, had no net revenue in P-1 and buy in P; value = their change in revenue.", "money", *_BRIDGE),
    Metric("bridge_increased", "Increased spend", "{customers} buying in both periods who spent more in P than in P-1; value = the increase.", "money", *_BRIDGE),
    Metric("bridge_decreased", "Decreased spend", "{customers} buying in both periods who spent less in P than in P-1; value = the decrease (negative).", "money", *_BRIDGE),
    Metric("bridge_flat", "Unchanged spend", "{customers} buying in both periods with exactly the same revenue (to the cent).", "money", *_BRIDGE),
    Metric("bridge_stopped", "Stopped buying", "{customers} with revenue in P-1 and none (or only returns) in P; value = minus their P-1 revenue (and any returns in P).", "money", *_BRIDGE),
    Metric("bridge_returns_only", "Returns without purchases", "{customers} with no purchase in either period whose returns of older purchases changed revenue.", "money", *_BRIDGE),
    Metric("ledger_opening", "Active base at start", "{customers} whose last purchase before the start of P is within the lapse window.", "count", *_LEDGER),
    Metric("ledger_new", "Gained: new", "{customers} whose first-ever purchase is in P.", "count", *_LEDGER),
    Metric("ledger_reactivated", "Gained: won back", "{customers} who had lapsed (not active at the start of P) and bought again in P.", "count", *_LEDGER),
    Metric("ledger_lapsed", "Lost: lapsed", "{customers} active at some point in P whose last purchase is more than the lapse window before the end of P; value = their trailing 12-month revenue up to their last purchase.", "count", *_LEDGER),
    Metric("ledger_closing", "Active base at end", "{customers} whose last purchase before the end of P is within the lapse window. Opening + new + won back - lapsed = closing.", "count", *_LEDGER),
    Metric("count_gained", "{customers} gained", "New plus won-back {customers} in P (ledger).", "count", *_LEDGER),
    Metric("value_gained", "Value gained", "Trailing 12-month revenue, at the end of P, of the {customers} gained.", "money", *_LEDGER),
    Metric("count_lost", "{customers} lost", "{customers} who lapsed during P (ledger).", "count", *_LEDGER),
    Metric("value_lost", "Value lost", "Trailing 12-month revenue of the lapsed {customers} up to their last purchase.", "money", *_LEDGER),
    Metric("retention_rate", "Retention rate", "Share of the opening active base still active at the end of P. Shown only beside the raw gained and lost numbers it hides.", "ratio", *_LEDGER),
)

# -- metric families (docs/architecture.md, "The metric contract") -----------------------
_TIERS = ("cxpipeline/metrics/tiers.py", "tests/test_metrics_tiers.py")
_RFM = ("cxpipeline/metrics/rfm.py", "tests/test_metrics_rfm.py")
_BEHAVIOUR = ("cxpipeline/metrics/behaviour.py", "tests/test_metrics_behaviour.py")
_SENSITIVITY = ("cxpipeline/metrics/sensitivity.py", "tests/test_metrics_sensitivity.py")
_REFERRALS = ("cxpipeline/metrics/referrals.py", "tests/test_metrics_referrals.py")
_PROFIT = ("cxpipeline/metrics/profitability.py", "tests/test_metrics_profitability.py")
_COHORTS = ("cxpipeline/metrics/cohorts.py", "tests/test_metrics_cohorts.py")

register(
    Metric("value_tier", "Value tier", "Tier by trailing 12-month net revenue. Cut values come from the base active at the start of P: for cumulative top shares q (config tiers.top_shares) the cut is the value of the ceil(q x N)-th {customer} of the N in the opening base, ranked by value; a {customer} is in the first tier whose cut their value reaches (ties go up), else in the last tier. The same cuts are applied at the end of P, so a move between tiers is a change in the {customer}'s own value.", "money", *_TIERS),
    Metric("migration_count", "{customers} moving between tiers", "{customers} by tier at the start of P (rows; 'New' and 'Won back' for {customers} gained in P) and tier at the end of P (columns; 'Lapsed' for those who lapsed). Row totals equal the ledger's opening, new and won-back lines; column totals equal its closing and lapsed lines.", "count", *_TIERS),
    Metric("migration_value", "Value moving between tiers", "Trailing 12-month revenue of the {customers} in each cell of the migration matrix: at the start of P for the tier rows (totals = opening value), at the end of P for the tier columns and the New / Won back rows (totals = closing, new and won-back values), and up to their last purchase in the Lapsed column (total = lapsed value).", "money", *_TIERS),
    Metric("migration_up", "Moved up a tier", "{customers} active at the start and end of P whose end tier is above their start tier; value = change in their trailing 12-month revenue (upward migration value).", "money", *_TIERS),
    Metric("migration_down", "Moved down a tier", "{customers} active at the start and end of P whose end tier is below their start tier; value = change in their trailing 12-month revenue (downward migration value).", "money", *_TIERS),
    Metric("within_tier_rose", "Same tier, value rose", "{customers} who stayed in their tier and whose trailing 12-month revenue rose by more than the tolerance (config tolerance, default 10 %) of its start value.", "money", *_TIERS),
    Metric("within_tier_steady", "Same tier, value steady", "{customers} who stayed in their tier with trailing 12-month revenue within the tolerance of its start value.", "money", *_TIERS),
    Metric("within_tier_fell", "Same tier, value fell", "{customers} who stayed in their tier and whose trailing 12-month revenue fell by more than the tolerance of its start value.", "money", *_TIERS),
    Metric("migration_new", "Gained: new", "{customers} whose first-ever purchase is in P, by tier at the end of P (or lapsed within P).", "money", *_TIERS),
    Metric("migration_won_back", "Gained: won back", "{customers} reactivated in P, by tier at the end of P (or lapsed again within P).", "money", *_TIERS),
    Metric("migration_lapsed", "Lost: lapsed", "{customers} of the ledger's lapsed line, by tier at the start of P (or New / Won back).", "money", *_TIERS),
    Metric("flag_top_to_lowest", "Top tiers to lowest tier", "{customers} in the top tiers at the start of P (all but the two lowest tiers, at least the first) who are in the lowest tier at the end of P.", "count", *_TIERS),
    Metric("flag_top_to_at_risk", "Top tiers to at-risk", "{customers} in the top tiers at the start of P, still active at the end of P, whose RFM segment at the end of P is At Risk, Can't Lose Them or About to Sleep.", "count", *_TIERS),
    Metric("flag_top_to_lapsed", "Top tiers to lapsed", "{customers} in the top tiers at the start of P who lapsed during P; value = their lapsed value.", "count", *_TIERS),
    Metric("rfm_recency", "Recency", "Days from a {customer}'s last purchase to the end of P; scored 1-5 by quintile of percentile rank (most recent = 5; ties share a score).", "days", *_RFM),
    Metric("rfm_frequency", "Frequency", "Purchase orders to the end of P; scored 1-5 by quintile.", "number", *_RFM),
    Metric("rfm_monetary", "Monetary", "Net revenue to the end of P; scored 1-5 by quintile. FM score = round-half-up of (F + M) / 2.", "money", *_RFM),
    Metric("rfm_segment", "RFM segment", "Named segment from the recency score R and the FM score through a fixed 5 x 5 grid (docs/metrics.md): Champions, Loyal, Potential Loyalists, New, Promising, Need Attention, About to Sleep, At Risk, Can't Lose Them, Hibernating, Lost. Scored: every {customer} with a purchase before the end of P.", "count", *_RFM),
    Metric("rfm_value", "Value held", "Trailing 12-month net revenue at the end of P of the {customers} in an RFM segment, and its share of the total.", "money", *_RFM),
    Metric("movers_increased", "Increased spend, by segment", "{customers} of the bridge class 'increased' per segment (attributes, value tier at the start of P, RFM segment at the end of P); value = their increase.", "money", *_BEHAVIOUR),
    Metric("movers_decreased", "Decreased spend, by segment", "{customers} of the bridge class 'decreased' per segment; value = their decrease (negative).", "money", *_BEHAVIOUR),
    Metric("movers_within_tolerance", "Steady spend", "{customers} buying in both periods whose change in revenue is at most the tolerance times their comparison-period revenue; value = their net change.", "money", *_BEHAVIOUR),
    Metric("buying_customers", "{customers} buying", "{customers} with at least one purchase order in the period.", "count", *_BEHAVIOUR),
    Metric("orders_per_customer", "Orders per {customer}", "Purchase orders in the period / {customers} buying.", "number", *_BEHAVIOUR),
    Metric("average_order_value", "Average order value", "Net revenue in the period (returns included) / purchase orders, so revenue = {customers} x orders per {customer} x average order value exactly.", "money", *_BEHAVIOUR),
    Metric("days_between_orders", "Days between orders", "Average gap between consecutive orders within the period: sum over {customers} with 2+ orders of (last - first order) / sum of (orders - 1).", "days", *_BEHAVIOUR),
    Metric("share_overdue", "Overdue (weakening)", "Among {customers} active at the end of the period with 2+ orders to date, the share whose days since last purchase exceed their own median gap between orders.", "ratio", *_BEHAVIOUR),
    Metric("share_buying_more_often", "Buying more often (strengthening)", "Among {customers} with orders in the period and in its own comparison period, the share with more orders in the period.", "ratio", *_BEHAVIOUR),
    Metric("effect_customers", "Effect of {customers} buying", "Part of the revenue change due to the number of {customers} buying: L(R1, R0) x ln(C1 / C0) (log-mean Divisia, LMDI-I). The three effects add up to the revenue change to the cent.", "money", *_BEHAVIOUR),
    Metric("effect_frequency", "Effect of orders per {customer}", "Part of the revenue change due to orders per {customer}: L(R1, R0) x ln(F1 / F0).", "money", *_BEHAVIOUR),
    Metric("effect_order_value", "Effect of average order value", "Part of the revenue change due to average order value: L(R1, R0) x ln(A1 / A0). Without {customers} in one period the whole change is the {customers} effect; with non-positive revenue a chained decomposition is used.", "money", *_BEHAVIOUR),
    Metric("lapse_sensitivity", "Lapse rule sensitivity", "The ledger of P recomputed under the fixed window and under the personal rule k x own median gap (k = 1.5, 2, 3; floor and cap from the config): opening, gained, lapsed (count and value) and closing.", "count", *_SENSITIVITY),
    Metric("count_retained", "{customers} retained", "{customers} of the opening base still active at the end of P; the retention rate is this over the opening base and is shown only beside gained and lost counts and values.", "count", *_SENSITIVITY),
    Metric("referred_new", "Referred new {customers}", "New {customers} of P whose {customer} record names a referrer (referred_by); value = their trailing 12-month revenue at the end of P.", "count", *_REFERRALS),
    Metric("referred_share_of_new", "Share of new {customers} referred", "Referred new {customers} / new {customers} (and the same for their value).", "ratio", *_REFERRALS),
    Metric("top_referrers", "Top referrers", "Referrers of P's new {customers} ranked by the value of the {customers} they brought, then by count.", "money", *_REFERRALS),
    Metric("referral_story", "Referral stories", "At most two referred new {customers} taken from the data: the one with a referral note and the largest value, and the one with the largest value. Nothing is written when the data has no referral information.", "money", *_REFERRALS),
    Metric("margin_12m", "Margin, last 12 months", "Net revenue - cost of goods - cost to serve over the 12 months before the end of P, per {customer} with any transaction in them.", "money", *_PROFIT),
    Metric("share_unprofitable", "Unprofitable {customers}", "Share of {customers} with a negative 12-month margin.", "ratio", *_PROFIT),
    Metric("share_value_unprofitable", "Revenue from unprofitable {customers}", "Net revenue of unprofitable {customers} / net revenue of all, over the last 12 months.", "ratio", *_PROFIT),
    Metric("whale_curve", "Whale curve", "Cumulative 12-month margin as a share of the total, with {customers} ranked by margin (most profitable first), at every 0.5 % of {customers} and at the peak.", "ratio", *_PROFIT),
    Metric("cohort_share_active", "Share still active", "{customers} of an acquisition cohort (first period with a transaction) who made a purchase in a later period / cohort size.", "ratio", *_COHORTS),
    Metric("cohort_revenue_retained", "Revenue retained", "A cohort's net revenue in a period / its net revenue in its acquisition period (0 when that is not positive).", "ratio", *_COHORTS),
)

# -- the at-risk model and customer value (docs/architecture.md, docs/model.md) -----------
_SCORE = ("cxpipeline/model/score.py", "tests/test_model_features.py")
_CLV = ("cxpipeline/model/clv.py", "tests/test_model_features.py")
_BACKTEST = ("cxpipeline/model/backtest.py", "tests/test_model_backtest.py")
_BGNBD = ("cxpipeline/model/bgnbd.py", "tests/test_model_bgnbd.py")
_VALUE_BACKTEST = ("cxpipeline/model/backtest.py", "tests/test_model_choice.py")

register(
    Metric("p_at_risk", "P(at risk)", "Probability that a {customer} makes no purchase in the model horizon (config model.horizon_days, 90 days by default) after the end of P, from the model with the lower Brier score in the backtest: a calibrated logistic model on recency, frequency, value, tenure, gap vs usual gap, spend trend, return share, segment and the BG/NBD probability, refitted each run on earlier snapshots; or the BG/NBD purchase model alone (always, when no outcome window of the horizon fits in the history). Printed as a probability only when its backtest Brier score beats the constant base rate.", "ratio", *_SCORE),
    Metric("predicted_value_12m", "Predicted 12-month value", "Expected net revenue of a {customer} in the 12 months after the end of P, from the value model with the smaller error in the value backtest: non-negative least squares on the last six months' revenue, the six months before, and average order value x the BG/NBD chance of still being active, fitted on earlier snapshots; or BG/NBD expected orders x Gamma-Gamma expected spend per order.", "money", *_CLV),
    Metric("historical_value", "Historical value", "Net revenue of a {customer} from their first purchase to the end of P.", "money", *_SCORE),
    Metric("value_at_risk", "Value at risk", "P(at risk) x predicted 12-month value; the at-risk list is ranked by it.", "money", *_SCORE),
    Metric("score_drivers", "Main drivers", "The (up to) three features pushing a {customer}'s score most towards at risk: coefficient x standardised feature value of the logistic model, largest first. Under the BG/NBD model: its inputs (days since last purchase, time since last order vs usual gap, orders to date). Under the recency rule: days since last purchase.", "number", *_SCORE),
    Metric("do_not_lose", "Do not lose them", "{customers} with tenure above the median of scored {customers}, historical value in the top 20 % and predicted 12-month value below their trailing 12-month revenue.", "count", *_CLV),
    Metric("backtest_lapse_rate", "Lapse rate (backtest)", "Share of the {customers} scored at the backtest snapshot (the latest month start whose whole horizon ends by the end of P) who made no purchase in the horizon.", "ratio", *_BACKTEST),
    Metric("backtest_roc_auc", "ROC-AUC (backtest)", "Probability that a {customer} who lapsed was scored above one who did not, at the backtest snapshot; 0.5 is chance, 1 is perfect.", "number", *_BACKTEST),
    Metric("backtest_brier", "Brier score (backtest)", "Mean squared difference between predicted P(at risk) and the outcome (1 lapsed, 0 bought) at the backtest snapshot; lower is better.", "number", *_BACKTEST),
    Metric("backtest_calibration", "Calibration by decile", "{customers} in ten equal-count groups by predicted P(at risk): mean predicted vs observed lapse rate; groups of 200 or more are held to within 5 points.", "ratio", *_BACKTEST),
    Metric("recency_rule", "Recency-only rule", "The baseline: ROC-AUC on days since last purchase alone, Brier on the lapse rate by days since last purchase fitted on the same training rows as the model.", "ratio", *_BACKTEST),
    Metric("bgnbd_model", "BG/NBD purchase model", "A label-free model of buying (Fader, Hardie & Lee 2005): while active a {customer} buys at a steady personal rate and may stop for good after any purchase; rates and stopping chances vary across {customers} (gamma and beta distributions) and are fitted by maximum likelihood on each {customer}'s number of repeat orders, time of the last order and time since the first, before the snapshot. It needs no outcome window, so it works with any history and any horizon.", "ratio", *_BGNBD),
    Metric("base_rate_brier", "Base rate (backtest)", "The Brier score of predicting the observed lapse rate for every {customer}: lapse rate x (1 - lapse rate). A probability that does no better carries no information and is not printed as one.", "number", *_BACKTEST),
    Metric("previous_list_review", "Last period's list, checked", "The at-risk list as it would have been printed at the end of P-1 (fitted on data up to then), against the purchases made since: how many of its top {customers} bought again.", "count", *_BACKTEST),
    Metric("value_backtest_mae", "Mean absolute error (value backtest)", "Each value model refitted at the latest month start whose next 12 months are observed (or the longest window the history allows), using only data before it: the mean over scored {customers} of |predicted - actual net revenue| in the window; lower is better.", "money", *_VALUE_BACKTEST),
    Metric("value_backtest_totals", "Total predicted vs actual", "The sum of predicted and of actual net revenue over the {customers} scored at the value backtest snapshot.", "money", *_VALUE_BACKTEST),
    Metric("value_backtest_lift", "Lift by decile of predicted value", "{customers} in ten equal-count groups by predicted value, highest first: each group's share of the actual net revenue, and its mean actual revenue / the mean of all (lift).", "ratio", *_VALUE_BACKTEST),
    Metric("naive_value", "Same as last 12 months", "The naive prediction: a {customer}'s next 12 months equal their last 12 (scaled to the window when it is shorter).", "money", *_VALUE_BACKTEST),
)

# -- the trend across meetings (issue 21) ----------------------------------------------------
_TREND = ("cxpipeline/metrics/trend.py", "tests/test_trend.py")
_EQUALS = " Each period's number is the one that period's own pack prints (same definition, same lapse rule, same comparison basis)."

register(
    Metric("trend_gained", "{customers} gained, by period", "For each of the last N periods (config trend.periods, default 8; fewer when the data does not cover a period's comparison period): new plus won-back {customers} of that period's ledger, in count and value (trailing 12-month revenue at the end of the period)." + _EQUALS, "count", *_TREND),
    Metric("trend_lost", "{customers} lost, by period", "For each period of the trend: the {customers} who lapsed in it, in count and value (trailing 12-month revenue up to their last purchase)." + _EQUALS, "count", *_TREND),
    Metric("trend_net", "Net change of the {customer} asset", "Gained minus lost, per period: in count it equals active base at end minus active base at start exactly; in value it is value gained minus value lost (values measured at different moments, so not the change in the base's trailing value)." + _EQUALS, "money", *_TREND),
    Metric("trend_active_base", "Active base at end, by period", "{customers} active at the end of each period of the trend (the ledger's closing line); each period's opening is the previous period's closing." + _EQUALS, "count", *_TREND),
    Metric("trend_revenue", "Revenue, by period", "Net revenue of each period of the trend and its change against that period's own comparison period (previous period or a year earlier, as configured)." + _EQUALS, "money", *_TREND),
    Metric("trend_revenue_movement", "Revenue movement by class, by period", "Each period's revenue bridge against its comparison period: the change from new, reactivated, increased, decreased, stopped and returns-only {customers}; the classes add up to the period's revenue change to the cent." + _EQUALS, "money", *_TREND),
    Metric("trend_value_at_risk", "Value at risk, this period", "The at-risk page's total (sum of P(at risk) x predicted 12-month value over the scored {customers}) at the end of P. Shown for the reporting period only: one run fits the model once, so earlier periods' scores are not available and no number is given for them.", "money", *_TREND),
)
