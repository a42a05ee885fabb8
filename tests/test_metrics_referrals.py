"""Referrals: exact counts, values, top referrers and stories; a plain 'no data' when there is none.

Registry metrics (cxpipeline/metrics/metrics.yaml) whose values are checked here:
``referred_new``, ``referred_share_of_new``, ``referral_story``.
"""

from __future__ import annotations

import pandas as pd

from cxpipeline.metrics.referrals import (
    has_referral_data,
    referral_customers,
    referral_stories,
    referral_summary,
    top_referrers,
)
from cxpipeline.panel import build_panel
from tests.conftest import transactions_frame

S = pd.Timestamp("2024-04-01")


def _flows(ids, new, values):
    return pd.DataFrame({"customer_id": pd.array(ids, dtype="string"), "is_new": new, "value_closing": values})


def test_referrals_exact():
    tx = transactions_frame([("old", "2023-05-01", 10), ("old2", "2023-06-01", 10), ("n1", "2024-04-02", 50),
                             ("n1", "2024-05-02", 30), ("n2", "2024-05-05", 200), ("n3", "2024-06-01", 20),
                             ("n4", "2024-06-02", 5)])
    panel = build_panel(tx, "quarter", end=pd.Timestamp("2024-07-01"))
    flows = _flows(["old", "old2", "n1", "n2", "n3", "n4"], [False, False, True, True, True, True], [10.0, 10.0, 80.0, 200.0, 20.0, 5.0])
    customers = pd.DataFrame({
        "customer_id": ["old", "old2", "n1", "n2", "n3", "n4"],
        "customer_name": ["Ann", "Bob", "Cy", "Di", "Ed", "Flo"],
        "referred_by": [None, "old", "old", "old2", " ", "old"],
        "referral_note": [None, None, "Met at the fair", None, None, None],
        "region": ["N", "N", "N", "S", "S", "S"],
    }).astype("string")
    assert has_referral_data(customers)
    referred = referral_customers(flows, customers, panel, S)
    assert referred.set_index("customer_id")["is_referred"].to_dict() == {"n1": True, "n2": True, "n3": False, "n4": True}
    summary = referral_summary(referred, True, customers[["customer_id", "region"]], ["region"]).set_index("segment_value")
    assert summary.loc["All"].drop("segment").to_dict() == {
        "has_referral_data": True, "count_new": 4, "value_new": 305.0, "count_referred": 3, "value_referred": 285.0,
        "share_of_new": 0.75, "share_of_new_value": 285 / 305}
    assert summary.loc["S", "count_referred"] == 2

    referrers = top_referrers(referred, customers, panel, pd.Timestamp("2024-07-01"))
    assert referrers.to_dict("list") == {
        "referrer_id": ["old2", "old"], "referrer_name": ["Bob", "Ann"], "count_referred": [1, 2],
        "value_referred": [200.0, 85.0], "count_referred_to_date": [1, 3]}  # old referred old2, n1 and n4
    stories = referral_stories(referred, customers, referrers)
    assert stories["kind"].tolist() == ["note", "largest_value"]
    assert stories["customer_id"].tolist() == ["n1", "n2"]
    assert stories.loc[0, "referral_note"] == "Met at the fair" and stories.loc[0, "count_orders"] == 2
    assert stories.loc[1, "referrer_name"] == "Bob" and stories.loc[1, "value"] == 200.0


def test_no_referral_information_is_said_plainly():
    flows = _flows(["a"], [True], [10.0])
    panel = build_panel(transactions_frame([("a", "2024-04-02", 10)]), "quarter")
    for customers in (None, pd.DataFrame({"customer_id": ["a"], "referred_by": [None]}).astype("string")):
        assert not has_referral_data(customers)
        referred = referral_customers(flows, customers, panel, S)
        summary = referral_summary(referred, False, pd.DataFrame({"customer_id": ["a"]}).astype("string"), [])
        assert summary.loc[0, "has_referral_data"] is False or not summary.loc[0, "has_referral_data"]
        assert summary.loc[0, "count_referred"] == 0 and summary.loc[0, "count_new"] == 1
        assert referral_stories(referred, customers, top_referrers(referred, customers, panel, S)).empty
