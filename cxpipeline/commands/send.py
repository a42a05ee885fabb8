"""``cxpipeline send``: email a built, checked pack to its recipients (SMTP from the environment)."""

from __future__ import annotations

import json

from cxpipeline.commands._common import add_config_argument, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "send",
        help="email a built pack (PDF attached) to its recipients",
        description="Email the checked board pack of one period, one message per recipient, with "
        "the PDF attached and the headline numbers in the body. SMTP settings come from "
        "CXPIPELINE_SMTP_HOST, _PORT, _USER, _PASSWORD, _FROM, _STARTTLS, _SSL. A pack `cxpipeline run` "
        "published (CXPIPELINE_ARTIFACT_URL) is linked from the email when CXPIPELINE_ARTIFACT_PUBLIC_URL "
        "gives the https address serving that store. A delivery "
        "ledger in the pack folder makes reruns skip recipients who already have this exact PDF.",
    )
    add_config_argument(parser)
    parser.add_argument("--period", "-p", required=True,
                        help="period of the pack to send, e.g. 2026-W14, 2024-Q4, 2024-11, FY2025-Q1")
    parser.add_argument("--to", metavar="ADDRESSES",
                        help="comma-separated recipients (default: delivery.recipients in the config)")
    parser.add_argument("--out", metavar="DIR", help="output root (default: output.root in the config)")
    parser.add_argument("--unit", metavar="NAME",
                        help="send one unit's pack (units in the config), e.g. North or 'North / Online'")
    parser.add_argument("--resend", action="store_true",
                        help="send even to recipients who already received this exact pack")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything (the checked PDF, the config it was built from, SMTP "
                        "settings), build each message and list who would be emailed; send nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    from cxpipeline.config import load_config
    from cxpipeline.delivery import SmtpSettings
    from cxpipeline.errors import CheckError, DeliveryError
    from cxpipeline.pipeline import pack_folder, resolve_period
    from cxpipeline.runs import artifact_store, deliver, published_copy
    from cxpipeline.units import unit_config

    config = load_config(args.config)
    period = resolve_period(config, args.period)
    target = unit_config(config, args.unit) if args.unit else config
    folder = pack_folder(target, period, args.out)
    if not (folder / "metrics.json").exists():
        raise CheckError(f"No built pack for {period.label}" + (f", unit {args.unit}" if args.unit else "") + ".",
                         where=str(folder),
                         fix=f"Build it first: cxpipeline run --config {args.config} --period {period.label}"
                             + (" --units" if args.unit else ""))
    store = artifact_store()  # published by `cxpipeline run`: the email links that PDF
    published = published_copy(folder, store.root(), public_url=store.public_url)
    try:
        report = deliver(args.config, folder, smtp=SmtpSettings.from_env(),  # a dry run checks them too
                         recipients=args.to or None, resend=args.resend, dry_run=args.dry_run, unit=args.unit,
                         published=published)
    except DeliveryError as exc:
        progress(f"failed: {exc.what}")
        raise
    verb, who = ("would send", report.get("would_send", [])) if args.dry_run else ("sent", report["sent"])
    progress(f"{verb}: {', '.join(who) or 'nobody'}; already had it: "
             f"{', '.join(report['skipped']) or 'nobody'}")
    print(json.dumps(report, indent=2))
    return 0
