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
        "CXPIPELINE_SMTP_HOST, _PORT, _USER, _PASSWORD, _FROM, _STARTTLS, _SSL. A delivery "
        "ledger in the pack folder makes reruns skip recipients who already have this exact PDF.",
    )
    add_config_argument(parser)
    parser.add_argument("--period", "-p", required=True,
                        help="period of the pack to send, e.g. 2026-W14, 2024-Q4, 2024-11, FY2025-Q1")
    parser.add_argument("--to", metavar="ADDRESSES",
                        help="comma-separated recipients (default: delivery.recipients in the config)")
    parser.add_argument("--out", metavar="DIR", help="output root (default: output.root in the config)")
    parser.add_argument("--resend", action="store_true",
                        help="send even to recipients who already received this exact pack")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything (the checked PDF, the config it was built from, SMTP "
                        "settings), build each message and list who would be emailed; send nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    from cxpipeline.artifacts import read_json
    from cxpipeline.config import config_hash, load_config
    from cxpipeline.delivery import SmtpSettings, send_pack
    from cxpipeline.errors import CheckError
    from cxpipeline.pipeline import pack_folder, resolve_period

    config = load_config(args.config)
    period = resolve_period(config, args.period)
    folder = pack_folder(config, period, args.out)
    metrics_path = folder / "metrics.json"
    if not metrics_path.exists():
        raise CheckError(f"No built pack for {period.label}.", where=str(folder),
                         fix=f"Build it first: cxpipeline run --config {args.config} --period {period.label}")
    recipients = args.to if args.to else config.delivery.recipients
    report = send_pack(
        folder / "board_pack.pdf", recipients,
        period_label=period.label, pack_id=config.pack_id, summary=read_json(metrics_path),
        smtp=SmtpSettings.from_env(),  # a dry run checks the settings too
        resend=args.resend, dry_run=args.dry_run,
        allowed_domains=config.delivery.allowed_domains, config_hash=config_hash(config),
        subject=config.delivery.subject.format(company=config.brand.company_name,
                                               period=period.label, pack_id=config.pack_id),
        artifact_location=str(folder.resolve()), currency=config.currency, locale=config.locale,
        customers=config.terminology.customers,
    )
    verb, who = ("would send", report.would_send) if args.dry_run else ("sent", report.sent)
    progress(f"{verb}: {', '.join(who) or 'nobody'}; already had it: "
             f"{', '.join(report.skipped) or 'nobody'}; failed: {', '.join(report.failed) or 'nobody'}")
    print(json.dumps(report.to_dict(), indent=2))
    report.raise_for_failures()
    return 0
