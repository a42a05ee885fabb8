"""``cxpipeline run``: build the board pack for one period from a config file."""

from __future__ import annotations

from cxpipeline.commands._common import add_config_argument, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="build the board pack for one period",
        description="Extract, compute metrics, score, render and check the board pack for one period. "
        "Writes everything to <output.root>/<pack_id>/<period>/ and prints the PDF's path last. "
        "With CXPIPELINE_ARTIFACT_URL set, each checked pack (the company's and every unit's) is "
        "published there under <pack_id>/<period>/ (a unit's under <pack_id>--<unit>/<period>/).",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--period", "-p",
        help="2026-W14 (ISO week), 2024-11 (month), 2024-Q4 (quarter), 2024 (year), FY2025-Q1 (fiscal); default: latest complete period",
    )
    parser.add_argument("--out", metavar="DIR", help="output root (default: output.root in the config)")
    parser.add_argument("--units", action="store_true",
                        help="also build one pack per unit (units.by in the config) from the same extract; "
                        "prints each unit's PDF path before the company's")
    parser.add_argument("--unit", metavar="NAME", action="append",
                        help="build only this unit's pack besides the company's (repeatable; implies --units)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from datetime import datetime, timezone

    from cxpipeline.config import load_config
    from cxpipeline.logo import load_logo
    from cxpipeline.pipeline import resolve_period, run_pack
    from cxpipeline.provenance import check_pack_root, pack_root
    from cxpipeline.runs import artifact_store, publish

    store = artifact_store()  # a bad public URL fails before any work
    config = load_config(args.config)
    # Fail before the source is read: a logo that cannot go into the pack, a bad period
    # label, a pack folder that another config's packs live in.
    load_logo(config)
    if args.period:
        resolve_period(config, args.period)
    check_pack_root(config, pack_root(config, args.out))
    if (args.units or args.unit) and config.units is None:
        from cxpipeline.errors import ConfigError

        raise ConfigError("--units needs units in the config.", where=args.config,
                          fix="Add e.g. units: {by: region, recipients: {North: [a@example.com]}}.")
    result = run_pack(config, args.period, args.out, progress=progress)

    def published(folder) -> None:
        if store.url:
            done = publish({"folder": str(folder)}, store.root(), public_url=store.public_url,
                           published_at=datetime.now(timezone.utc).isoformat())["published"]
            progress(f"published {done['pointer']}" + (f" ({done['pdf_link']})" if done["pdf_link"] else ""))

    published(result.folder)
    if args.units or args.unit:
        from cxpipeline.errors import CheckError
        from cxpipeline.units import run_units

        built, failed = run_units(config, result.period, args.out, only=args.unit, progress=progress)
        for unit in built:
            published(unit["folder"])
            print(unit["pdf"])
        if failed:
            raise CheckError(f"{len(failed)} unit pack(s) failed: " + "; ".join(f"{k}: {v.splitlines()[0]}"
                                                                              for k, v in failed.items()),
                             where=str(result.folder.parent.parent),
                             fix="Fix what each unit's error names; the other units' packs were built.")
    print(result.pdf_path)
    return 0
