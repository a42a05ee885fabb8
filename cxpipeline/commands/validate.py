"""``cxpipeline validate``: check a config and its source without building a pack."""

from __future__ import annotations

from cxpipeline.commands._common import add_config_argument, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check the config and the source; print row counts and exclusions",
        description="Validate the config file and read the source: prints rows in/used, excluded rows and "
        "revenue by reason, the date range and customer count. Exit status 2 on any problem.",
    )
    add_config_argument(parser)
    parser.add_argument("--period", "-p", help="the period to tie out (default: the latest complete period)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from cxpipeline.config import load_config
    from cxpipeline.sources import load_source

    from cxpipeline.logo import load_logo

    config = load_config(args.config)
    load_logo(config)  # before any data is read: a logo that cannot go into the pack
    print(f"config ok: pack '{config.pack_id}', {config.period.type}ly, comparison {config.period.comparison}")
    progress("reading source ...")
    data = load_source(config)
    tx, q = data.transactions, data.quality.to_dict()
    print(f"source: {data.description}")
    print(f"rows in: {q['rows_in']:,}  used: {q['rows_used']:,}  excluded: {q['rows_excluded']:,}")
    print(f"revenue in: {q['revenue_in']:,.2f}  used: {q['revenue_used']:,.2f}  excluded: {q['revenue_excluded']:,.2f}")
    for item in q["excluded_by_reason"]:
        print(f"  excluded - {item['reason']}: {item['rows']:,} rows, revenue {item['revenue']:,.2f}")
    for note in q["notes"]:
        print(f"  note: {note}")
    if len(tx):
        print(f"dates: {tx['ordered_at'].min():%Y-%m-%d} to {tx['ordered_at'].max():%Y-%m-%d} "
              f"({config.report_timezone} time); customers: {tx['customer_id'].nunique():,}")
        _print_tie_out(config, data, getattr(args, "period", None))
    missing = [s for s in config.segments
               if s not in tx.columns and (data.customers is None or s not in data.customers.columns)]
    if missing:
        from cxpipeline.errors import ConfigError

        raise ConfigError(f"Segment(s) {', '.join(missing)} are in neither the transactions nor the customer table.",
                          where=f"{args.config}: segments",
                          fix="Remove them from 'segments' or map them in the source"
                              + (" (segments is not set, so it is the demo's three: set 'segments:' to your "
                                 "segment columns, or 'segments: []' for none)." if "segments" not in
                                 config.model_fields_set else "."))
    print("ok")
    return 0


def _print_tie_out(config, data, period_label: str | None) -> None:
    """Rows and revenue in the source against those used, for the period and its comparison."""
    from cxpipeline.periods import comparison_period
    from cxpipeline.pipeline import resolve_period, source_tie_out

    last = data.transactions["ordered_at"].max()
    period = resolve_period(config, period_label, last.date(), say=progress)
    comparison = comparison_period(period, config.period.comparison)
    print(f"tie-out (rows and revenue dated in the period; periods start at midnight, {config.report_timezone}):")
    for tie in source_tie_out(data, [period, comparison]):
        verdict = ("equal" if tie["is_revenue_equal"] else
                   "excluded: " + ", ".join(f"{e['reason']} {e['rows']:,} rows {e['revenue']:,.2f}" for e in tie["excluded"]))
        print(f"  {tie['period']}: source {tie['rows_source']:,} rows {tie['revenue_source']:,.2f}; "
              f"used {tie['rows_used']:,} rows {tie['revenue_used']:,.2f} ({verdict})")
