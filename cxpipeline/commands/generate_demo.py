"""``cxpipeline generate-demo``: write the demo retailer to Parquet or CSV files, any size.

Generates in chunks of customers and streams each chunk to the output files, so memory stays
bounded however many transactions are asked for (benchmarks use tens of millions). The files
are what a file source reads: ``transactions.<ext>`` in the canonical columns and
``customers.<ext>``.
"""

from __future__ import annotations

import time
from pathlib import Path

from cxpipeline.commands._common import progress

__all__ = ["register", "run", "write_demo_files"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate-demo",
        help="write the deterministic demo retailer to Parquet/CSV files (any size, bounded memory)",
        description="Generate the demo retailer in chunks and write transactions and customers files "
        "(canonical column names). Prints the output folder as the last line.",
    )
    parser.add_argument("--customers", type=int, default=5000, help="number of customers (default 5000)")
    parser.add_argument("--years", type=int, default=4, help="years of history (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same data")
    parser.add_argument("--end-date", default="2026-09-30", help="last day of data, YYYY-MM-DD (default 2026-09-30)")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="file format (default parquet)")
    parser.add_argument("--chunk-customers", type=int, default=100_000,
                        help="customers generated per chunk; bounds memory (~0.85 GB at the default 100000)")
    parser.add_argument("--out", default="demo_data", metavar="DIR", help="output folder (default ./demo_data)")
    parser.set_defaults(func=run)


def write_demo_files(
    out_dir: str | Path,
    customers: int,
    years: int,
    seed: int = 7,
    end_date: str = "2026-09-30",
    file_format: str = "parquet",
    chunk_customers: int = 200_000,
) -> dict:
    """Stream the demo retailer to ``out_dir/transactions.<ext>`` and ``out_dir/customers.<ext>``.

    Returns
    -------
    dict
        ``{"transactions": path, "customers": path, "rows": int, "customers_count": int,
        "seconds": float}``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from cxpipeline.errors import InputError
    from cxpipeline.sources.demo import iter_demo_chunks

    if file_format not in ("parquet", "csv"):
        raise InputError(f"Unknown demo file format {file_format!r}.", where="--format",
                         fix="Use 'parquet' or 'csv'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.{file_format}" for name in ("transactions", "customers")}
    partial = {name: path.with_name(path.name + ".partial") for name, path in paths.items()}
    writers: dict = {}
    rows = 0
    started = time.perf_counter()
    completed = False
    try:
        for transactions, people in iter_demo_chunks(customers, years, seed, end_date, chunk_customers):
            for name, frame in (("transactions", transactions), ("customers", people)):
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = (
                        pq.ParquetWriter(partial[name], table.schema, compression="zstd")
                        if file_format == "parquet"
                        else pacsv.CSVWriter(partial[name], table.schema)
                    )
                writers[name].write_table(table)
            rows += len(transactions)
            progress(f"generated {rows:,} transactions ({people['customer_id'].iloc[-1]})")
        completed = True
    finally:
        for writer in writers.values():
            writer.close()
        if not completed:  # never leave half-written files behind
            for path in partial.values():
                path.unlink(missing_ok=True)
    for name in paths:  # complete files only appear once everything is written
        partial[name].replace(paths[name])
    return {
        "transactions": str(paths["transactions"]),
        "customers": str(paths["customers"]),
        "rows": rows,
        "customers_count": int(customers),
        "seconds": round(time.perf_counter() - started, 3),
    }


def run(args) -> int:
    result = write_demo_files(
        args.out, args.customers, args.years, args.seed, args.end_date, args.format, args.chunk_customers
    )
    progress(f"wrote {result['rows']:,} transactions for {result['customers_count']:,} customers "
             f"in {result['seconds']:.1f} s")
    print(Path(args.out).resolve())
    return 0
