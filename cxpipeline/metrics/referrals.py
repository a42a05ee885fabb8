"""Referrals (docs/architecture.md, "Referrals"): new customers brought by existing ones, from ``referred_by``.

A new customer of P (ledger: first-ever purchase in P) is *referred* when the customer table
gives them a non-empty ``referred_by``. Value = their trailing 12-month net revenue at the end
of P (the ledger's value of a new customer). Top referrers rank referrers by the value of the
new customers they brought in P. Stories are facts from the data, never invented: the referred
new customer with a ``referral_note`` and the largest value, and the referred new customer with
the largest value (at most two, no duplicate). Without a ``referred_by`` column, or with one
that is empty for everyone, ``has_referral_data`` is False and the other tables are empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cxpipeline.metrics.breakdown import by_segment
from cxpipeline.metrics.ids import as_ids, is_coded

__all__ = ["clean_text", "has_referral_data", "referral_customers", "referral_summary", "top_referrers", "referral_stories"]


def clean_text(values: pd.Series) -> pd.Series:
    """Text stripped of surrounding blanks, empty text missing; coded ids (already clean) as they are."""
    if is_coded(values):
        return values
    text = values.astype("string").str.strip()
    return text.mask(text == "")


_clean = clean_text


def has_referral_data(customers: pd.DataFrame | None) -> bool:
    """True when the customer table has a ``referred_by`` column with at least one value."""
    return customers is not None and "referred_by" in customers.columns and bool(_clean(customers["referred_by"]).notna().any())


def referral_customers(flows: pd.DataFrame, customers: pd.DataFrame | None, panel: pd.DataFrame, period_start: pd.Timestamp) -> pd.DataFrame:
    """The new customers of P with their referrer, value, orders and note.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, referred_by, is_referred, value, count_orders, first_order_at,
        referral_note``.
    """
    new = flows.loc[flows["is_new"], ["customer_id", "value_closing"]].rename(columns={"value_closing": "value"})
    in_p = panel.loc[panel["period_start"] == pd.Timestamp(period_start)].groupby("customer_id", observed=True).agg(
        count_orders=("count_orders", "sum"), first_order_at=("first_order_at", "min"))
    if new.empty:  # joining two empty string columns fails in pyarrow
        new = new.assign(count_orders=pd.Series(dtype="int64"), first_order_at=pd.Series(dtype="datetime64[us]"))
    else:
        new = new.join(in_p, on="customer_id")
    new["count_orders"] = new["count_orders"].fillna(0).astype("int64")
    columns = [c for c in ("referred_by", "referral_note") if customers is not None and c in customers.columns]
    if columns:
        attrs = customers[["customer_id", *columns]].copy()
        attrs["customer_id"] = as_ids(attrs["customer_id"])
        new = new.merge(attrs, on="customer_id", how="left")
    for column in ("referred_by", "referral_note"):
        new[column] = _clean(new[column]) if column in new.columns else pd.Series(pd.NA, index=new.index, dtype="string")
    new["is_referred"] = new["referred_by"].notna()
    return new[["customer_id", "referred_by", "is_referred", "value", "count_orders", "first_order_at", "referral_note"]].reset_index(drop=True)


def referral_summary(referred: pd.DataFrame, has_data: bool, segments: pd.DataFrame, segment_columns: Sequence[str]) -> pd.DataFrame:
    """Count, value and share of new customers that were referred, overall and per segment.

    Returns
    -------
    pandas.DataFrame
        ``segment, segment_value, has_referral_data, count_new, value_new, count_referred,
        value_referred, share_of_new, share_of_new_value`` (shares 0 when there is no new
        customer or no new value).
    """
    def summarise(rows: pd.DataFrame) -> pd.DataFrame:
        mask = rows["is_referred"]
        count_new, value_new = len(rows), round(float(rows["value"].sum()), 2)
        count_ref, value_ref = int(mask.sum()), round(float(rows.loc[mask, "value"].sum()), 2)
        return pd.DataFrame([{
            "has_referral_data": has_data, "count_new": count_new, "value_new": value_new,
            "count_referred": count_ref, "value_referred": value_ref,
            "share_of_new": count_ref / count_new if count_new else 0.0,
            "share_of_new_value": value_ref / value_new if value_new else 0.0,
        }])

    frame = referred.merge(segments, on="customer_id", how="left")
    for column in segment_columns:  # a segment value only seen outside the new customers still gets no row
        frame[column] = frame[column].astype("string")
    return by_segment(frame, list(segment_columns), summarise)


def _names(customers: pd.DataFrame | None) -> pd.Series:
    if customers is None or "customer_name" not in customers.columns:
        return pd.Series(dtype="string")
    return customers.assign(customer_id=as_ids(customers["customer_id"])).set_index("customer_id")["customer_name"].astype("string")


def top_referrers(referred: pd.DataFrame, customers: pd.DataFrame | None, panel: pd.DataFrame, period_end: pd.Timestamp) -> pd.DataFrame:
    """Referrers of P's new customers, best first (value, then count, then id).

    Returns
    -------
    pandas.DataFrame
        ``referrer_id, referrer_name, count_referred, value_referred,
        count_referred_to_date`` (to date: every customer with this referrer who has bought
        before the end of P).
    """
    rows = referred.loc[referred["is_referred"]]
    out = rows.groupby("referred_by", observed=True).agg(count_referred=("customer_id", "size"), value_referred=("value", "sum"))
    out.index.name = "referrer_id"
    # nullable, as a size over string referrer ids has always been (same column type with codes)
    out["count_referred"] = out["count_referred"].astype("Int64")
    out["value_referred"] = out["value_referred"].round(2)
    buyers = panel.loc[(panel["period_start"] < pd.Timestamp(period_end)) & (panel["count_orders"] > 0), "customer_id"].unique()
    if customers is not None and "referred_by" in customers.columns:
        ever = customers.loc[as_ids(customers["customer_id"]).isin(buyers)]
        to_date = _clean(ever["referred_by"]).value_counts()
    else:
        to_date = pd.Series(dtype="int64")
    out["count_referred_to_date"] = to_date.reindex(out.index, fill_value=0).astype("int64")
    out = out.reset_index()
    out["referrer_id"] = as_ids(out["referrer_id"])
    out["referrer_name"] = out["referrer_id"].map(_names(customers)).astype("string")
    out = out.sort_values(["value_referred", "count_referred", "referrer_id"], ascending=[False, False, True], kind="stable")
    return out[["referrer_id", "referrer_name", "count_referred", "value_referred", "count_referred_to_date"]].reset_index(drop=True)


def referral_stories(referred: pd.DataFrame, customers: pd.DataFrame | None, referrers: pd.DataFrame) -> pd.DataFrame:
    """At most two highlighted referrals, made only of facts from the data.

    Returns
    -------
    pandas.DataFrame
        ``kind ("note" / "largest_value"), customer_id, customer_name, referrer_id,
        referrer_name, value, count_orders, first_order_at, referral_note,
        referrer_count_referred_to_date``.
    """
    rows = referred.loc[referred["is_referred"]].sort_values(["value", "customer_id"], ascending=[False, True], kind="stable")
    picks: list[tuple[str, pd.Series]] = []
    noted = rows.loc[rows["referral_note"].notna()]
    if len(noted):
        picks.append(("note", noted.iloc[0]))
    if len(rows) and not (picks and picks[0][1]["customer_id"] == rows.iloc[0]["customer_id"]):
        picks.append(("largest_value", rows.iloc[0]))
    names = _names(customers)
    to_date = referrers.set_index("referrer_id")["count_referred_to_date"] if len(referrers) else pd.Series(dtype="int64")
    records = [{
        "kind": kind, "customer_id": row["customer_id"], "customer_name": names.get(row["customer_id"], pd.NA),
        "referrer_id": row["referred_by"], "referrer_name": names.get(row["referred_by"], pd.NA),
        "value": float(row["value"]), "count_orders": int(row["count_orders"]), "first_order_at": row["first_order_at"],
        "referral_note": row["referral_note"],
        "referrer_count_referred_to_date": int(to_date.get(row["referred_by"], 0)),
    } for kind, row in picks]
    columns = ["kind", "customer_id", "customer_name", "referrer_id", "referrer_name", "value", "count_orders",
               "first_order_at", "referral_note", "referrer_count_referred_to_date"]
    out = pd.DataFrame.from_records(records, columns=columns)
    id_dtype = referred["customer_id"].dtype if is_coded(referred["customer_id"]) else "string"
    return out.astype({"kind": "string", "customer_id": id_dtype, "customer_name": "string", "referrer_id": id_dtype,
                       "referrer_name": "string", "value": "float64", "count_orders": "int64",
                       "first_order_at": "datetime64[us]", "referral_note": "string", "referrer_count_referred_to_date": "int64"})
