"""Integer customer codes (cxpipeline.metrics.ids) change no number.

compute_tables runs every metric on int64 codes and decodes the ids at the end; the public
metric functions still take string ids. The tables must be identical either way (values,
dtypes, row order), on generated data with awkward ids: a referrer outside the customer table,
blank and padded ``referred_by`` values, customers who never bought, ids whose sort order is
not their order of appearance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cxpipeline.config import Config
from cxpipeline.metrics import tables as metric_tables
from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ids import CustomerCodes, as_ids, is_coded
from cxpipeline.metrics.ledger import LapseRule, customer_flows, customer_flows_by_rule
from cxpipeline.metrics.tables import MetricInputs, compute_tables
from cxpipeline.panel import build_panel, customer_cadence
from cxpipeline.periods import comparison_period, parse_period
from tests.conftest import transactions_frame

# unsorted, mixed-length ids ("c10" sorts before "c2"), one never buys (z9)
IDS = ["c2", "c10", "b1", "c1", "Ä3", "a", "c0", "z9"]
CUSTOMERS = pd.DataFrame({
    "customer_id": IDS,
    "region": ["N", "S", "N", None, "E", "", "S", "N"],
    "referred_by": [None, " c2 ", "", "c10", "x-outside", "c2", "  ", "b1"],
    "referral_note": [None, "met at a fair", None, None, "", None, None, None],
    "customer_name": [f"Name {i}" for i in IDS],
}).astype("string")

_rows = st.lists(
    st.tuples(st.sampled_from(IDS[:-1]), st.integers(0, 3 * 365 - 1), st.integers(-3000, 40000)),
    min_size=1, max_size=60,
)


def _inputs(rows, kind: str, basis: str) -> tuple[MetricInputs, Config]:
    start = pd.Timestamp("2022-01-01")
    tx = transactions_frame([(c, start + pd.Timedelta(days=d, hours=d % 24), cents / 100) for c, d, cents in rows])
    period = parse_period({"month": "2024-06", "quarter": "2024-Q2", "year": "2024"}[kind])
    comparison = comparison_period(period, basis)
    panel = build_panel(tx, kind, end=pd.Timestamp(period.end))
    instants = [pd.Timestamp(t) for t in (comparison.start, comparison.end, period.start, period.end)]
    cadence = customer_cadence(tx, instants)
    return MetricInputs(panel=panel, customers=CUSTOMERS, cadence=cadence, period=period, comparison=comparison), Config(
        segments=["region"], period={"type": kind, "comparison": basis})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(rows=_rows, kind=st.sampled_from(["month", "quarter", "year"]), basis=st.sampled_from(["previous", "year_ago"]),
       mode=st.sampled_from(["fixed", "personal"]))
def test_coded_tables_equal_string_tables(rows, kind, basis, mode):
    inputs, config = _inputs(rows, kind, basis)
    config = config.model_copy(update={"lapse": config.lapse.model_copy(update={"mode": mode})})
    coded = compute_tables(inputs, config)
    plain = metric_tables._compute_tables(inputs, config)  # the same metrics on the string ids
    assert sorted(coded) == sorted(plain)
    for name in plain:
        expected = plain[name]
        if name == "tier_customers":
            expected = expected.assign(customer_id=expected["customer_id"].astype(object))
        pd.testing.assert_frame_equal(coded[name], expected, check_exact=True, obj=name)


def test_codes_follow_the_sort_order_of_the_ids_and_decode_back():
    ids = pd.Series(["c10", "c2", None, "a", "c10", "Ä"], dtype="string")
    referrers = pd.Series(["c2", "outside"], dtype="string")
    codes, (coded_ids, coded_referrers) = CustomerCodes.build([ids, referrers])
    assert codes.labels.tolist() == ["a", "c10", "c2", "outside", "Ä"]  # code order == string order
    assert str(coded_ids.dtype) == "Int64"  # a missing id stays missing
    assert coded_ids.tolist() == [1, 2, pd.NA, 0, 1, 4]
    assert coded_referrers.dtype == "int64" and coded_referrers.tolist() == [2, 3]
    decoded = codes.decode(coded_ids)
    pd.testing.assert_series_equal(decoded, ids)
    table = codes.decode_table(pd.DataFrame({"customer_id": coded_referrers, "referrer_id": coded_referrers, "n": [1, 2]}))
    assert table["customer_id"].tolist() == ["c2", "outside"] and table["referrer_id"].dtype == "string"
    assert table["n"].tolist() == [1, 2]


def test_as_ids_keeps_codes_and_makes_anything_else_string():
    codes = pd.Series([3, 1], dtype="int64")
    assert as_ids(codes) is codes and is_coded(codes)
    assert is_coded(pd.Series([1, None], dtype="Int64"))
    text = as_ids(pd.Series(["a", None], dtype=object))
    assert text.dtype == "string" and text.isna().tolist() == [False, True]


def test_flows_for_several_rules_equal_one_rule_at_a_time():
    # customer i buys every 30 + 20 i days and stops 60 i days before the end of the data
    rows = [(c, d, 1000 + 37 * d) for i, c in enumerate(IDS[:-1]) for d in range(0, 3 * 365 - 60 * i, 30 + 20 * i)]
    inputs, _ = _inputs(rows, "quarter", "previous")
    s, e = pd.Timestamp(inputs.period.start), pd.Timestamp(inputs.period.end)
    rules = [LapseRule("fixed", 180), LapseRule("personal", 365, 1.5), LapseRule("personal", 365, 3.0)]
    together = customer_flows_by_rule(inputs.panel, s, e, rules, inputs.cadence)
    assert len(together) == 3
    for rule, flows in zip(rules, together):
        pd.testing.assert_frame_equal(flows, customer_flows(inputs.panel, s, e, rule, inputs.cadence), check_exact=True)
    assert len({int(flows["is_lapsed"].sum()) for flows in together}) > 1  # the rules do differ here


def test_by_segment_groups_sorted_in_frame_order_and_skips_missing_values():
    frame = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "region": pd.array(["S", None, "N", "S", "N"], dtype="string"),
        "kind": pd.array(["x", "y", "x", "x", "y"], dtype="string"),
        "value": [1.0, 2.0, 4.0, 8.0, 16.0],
    })
    seen = []

    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        assert "region" not in rows.columns  # segment columns are not handed to summarise
        seen.append(rows["value"].tolist())
        return pd.DataFrame({"total": [rows["value"].sum()], "count_x": [int((rows["kind"] == "x").sum())]})

    out = by_segment(frame, ["region"], summarise)
    assert out["segment"].tolist() == ["all", "region", "region"]
    assert out["segment_value"].tolist() == ["All", "N", "S"]
    assert out["total"].tolist() == [31.0, 20.0, 9.0]  # the missing region is only in "all"
    assert out["count_x"].tolist() == [3, 1, 2]
    assert seen == [[1.0, 2.0, 4.0, 8.0, 16.0], [4.0, 16.0], [1.0, 8.0]]


def test_sensitivity_reuses_precomputed_flows_without_changing_them():
    rows = [(c, d, 500 + d) for c in IDS[:-1] for d in range(0, 3 * 365, 60 + 7 * IDS.index(c))]
    inputs, config = _inputs(rows, "quarter", "previous")
    tables = compute_tables(inputs, config)
    from cxpipeline.metrics.sensitivity import lapse_sensitivity

    s, e = pd.Timestamp(inputs.period.start), pd.Timestamp(inputs.period.end)
    alone = lapse_sensitivity(inputs.panel, s, e, LapseRule.from_config(config.lapse), inputs.cadence)
    pd.testing.assert_frame_equal(tables["lapse_sensitivity"], alone, check_exact=True)
    assert np.array_equal(alone["is_configured"].to_numpy(), [True, False, False, False])
