#!/usr/bin/env python3
"""Turns bench/migrate.sh's timings (TSV: tool, run, seconds) into a Markdown report.

Usage: report.py TIMES.tsv NPROC   (the other facts come from migrate.sh's environment)
"""

from __future__ import annotations

import os
import statistics
import sys
from collections import defaultdict

LABELS = {
    "psql_loop": ("psql, one process per file", "`psql -X -q -v ON_ERROR_STOP=1 -f FILE URL` for each file"),
    "tend": ("tend", "`DATABASE_URL=URL tend migrate deploy -q`"),
    "dbmate": ("dbmate", "`dbmate --url URL?sslmode=disable --no-dump-schema up`"),
    "sqlx": ("sqlx-cli", "`sqlx migrate run --source DIR --database-url URL`"),
    "psql_session": ("baseline: one psql session", "`psql -X -q -v ON_ERROR_STOP=1 -f segments.sql URL`"),
}
PEERS = ["psql_loop", "tend", "dbmate", "sqlx"]


def main() -> int:
    times: dict[str, list[float]] = defaultdict(list)
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            tool, _run, secs = line.rstrip("\n").split("\t")
            times[tool].append(float(secs))
    nproc = sys.argv[2]
    env = os.environ
    n = int(env["COUNT"])
    median = {t: statistics.median(v) for t, v in times.items()}
    peers = [t for t in PEERS if t in times]
    fastest = min(peers, key=lambda t: median[t])
    loop = median["psql_loop"]
    session = median.get("psql_session")

    out = []
    w = out.append
    w(f"Deploying {n} generated Prisma-style migrations to an empty database "
      f"(median of {env['RUNS']} timed runs after {env['WARMUP']} untimed warm-up round(s), "
      "a fresh database each run, the tools interleaved):")
    w("")
    w("| Tool | Runs (s) | Median (s) | ms per migration | time ÷ psql loop | time ÷ fastest peer | ms over one session, per migration |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for tool in peers + (["psql_session"] if session is not None else []):
        runs = ", ".join(f"{x:.2f}" for x in times[tool])
        m = median[tool]
        over = f"{(m - session) * 1000 / n:.2f}" if session is not None and tool != "psql_session" else "—"
        vs_fastest = f"{m / median[fastest]:.2f}×" if tool in peers else "—"
        name = LABELS[tool][0] + (" (fastest)" if tool == fastest else "")
        w(f"| {name} | {runs} | {m:.2f} | {m * 1000 / n:.1f} | {m / loop:.2f}× | {vs_fastest} | {over} |")
    w("")
    if session is not None and "tend" in median:
        over = (median["tend"] - session) * 1000 / n
        # Rounds are interleaved, so tend's run r and the session's run r are minutes apart at
        # most: their difference cancels slow drifts in the machine's speed.
        paired = [(t - s) * 1000 / n for t, s in zip(times["tend"], times["psql_session"])]
        w(f"tend's overhead per migration: ({median['tend']:.3f} s − {session:.3f} s) / {n} = "
          f"**{over:.2f} ms** (tend's median deploy minus the median of the same statements "
          f"run in one psql session, divided by the number of migrations); round by round "
          f"(tend's run r minus the session's run r, / {n}): "
          + ", ".join(f"{x:.2f}" for x in paired)
          + f" ms, median {statistics.median(paired):.2f} ms.")
        w("")
    if "psql_startup" in times:
        su = times["psql_startup"][0]
        w(f"Starting psql {n} times with `-c 'SELECT 1'` (no migration at all) took {su:.2f} s "
          f"({su * 1000 / n:.1f} ms each), {su / loop * 100:.0f}% of the psql loop's median: the loop's "
          "cost is mostly a process and a connection per file.")
        w("")
    st = times.get("status", [])
    if st:
        ms = [x * 1000 for x in st]
        w(f"`tend migrate status` on {env['STATUS_COUNT']} applied migrations: median "
          f"**{statistics.median(ms):.0f} ms** over {len(ms)} runs "
          f"(min {min(ms):.0f}, max {max(ms):.0f}; output to a file).")
        if "status_deploy" in times:
            d = times["status_deploy"][0]
            w(f"Deploying those {env['STATUS_COUNT']} first (one run, not a comparison) took "
              f"{d:.2f} s ({d * 1000 / int(env['STATUS_COUNT']):.1f} ms per migration).")
        w("")
    w("Commands (URL is `postgresql://postgres@127.0.0.1:PORT/DB`, a new DB for every run):")
    w("")
    for tool in peers + (["psql_session"] if session is not None else []):
        w(f"- {LABELS[tool][0]}: {LABELS[tool][1]}")
    w("")
    w(f"History ({n} migrations, generated, deterministic): {env['GEN_STATS']}; "
      f"the resulting schema has {env['TABLES']} tables and {env['INDEXES']} indexes, "
      "identical (pg_dump -s) for every tool and run.")
    w(f"Machine: {nproc} cores ({env.get('CPU') or 'unknown CPU'}); PostgreSQL {env['SERVER_VERSION']} "
      f"on 127.0.0.1 over TCP ({env['DURABILITY']}); {env['VERSIONS']}.")
    w(f"Load average (1, 5, 15 min) before the timed rounds: {env['LOAD_BEFORE']}; "
      f"after the status runs: {env['LOAD_AFTER']}.")
    if env.get("SQLX") != "1":
        w("sqlx-cli was not part of this run.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
