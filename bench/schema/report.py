#!/usr/bin/env python3
"""Turns bench/schema.sh's timings (name, run, ms, peak RSS in KB per line) into the Markdown
report; the rest of what it prints comes from the environment schema.sh exports."""

import os
import statistics
import sys


def load(path):
    runs = {}
    for line in open(path):
        name, run, ms, rss = line.split("\t")
        runs.setdefault(name, {})[int(run)] = (float(ms), int(rss))
    return runs


def main():
    runs = load(sys.argv[1])
    env = os.environ
    n = int(env["RUNS"])

    def ms(name):
        return [runs[name][r][0] for r in sorted(runs[name])]

    def med(name):
        return statistics.median(ms(name))

    def rss(name):
        return max(runs[name][r][1] for r in runs[name]) / 1024

    def per_round(slow, fast):
        return statistics.median(runs[slow][r][0] / runs[fast][r][0] for r in runs[fast])

    def fmt(values):
        return ", ".join(f"{v:.0f}" for v in values)

    p = print
    p(f"Machine: {env['NPROC']} cores ({env.get('CPU') or 'unknown CPU'}); PostgreSQL "
      f"{env['SERVER_VERSION']} in a throwaway cluster on 127.0.0.1 (TCP); {env['TEND_VERSION']}; "
      f"{env['MIGRA_VERSIONS']}. Load average before the timed rounds {env['LOAD_BEFORE']}, "
      f"after {env['LOAD_AFTER']}.")
    p()
    p(f"Generated {env['GEN_STATS']}. **tend counts {env['OBJECTS_A']} objects in A** "
      f"({env['OBJECTS_B']} in B; A has {env['RELATIONS_A']} relations in pg_class). "
      f"{env['WARMUP']} warm-up round, then {n} timed rounds; within a round the commands take turns.")
    p()
    p("| measure | tend | migra | migra ÷ tend |")
    p("| --- | ---: | ---: | ---: |")
    ab = med("migra_ab") / med("tend_ab")
    aa = med("migra_aa") / med("tend_aa")
    p(f"| A → B ({env['CHANGES']} changes), median of {n} | {med('tend_ab'):.0f} ms | "
      f"{med('migra_ab'):.0f} ms | {ab:.1f}× |")
    p(f"| A → A (equal), median of {n} | {med('tend_aa'):.0f} ms | {med('migra_aa'):.0f} ms | "
      f"{aa:.1f}× |")
    p(f"| peak memory (max RSS), A → B | {rss('tend_ab'):.1f} MB | {rss('migra_ab'):.1f} MB | "
      f"{rss('migra_ab') / rss('tend_ab'):.1f}× |")
    p(f"| start-up alone (`tend --version`, `migra --help`), median | {med('tend_start'):.1f} ms | "
      f"{med('migra_start'):.0f} ms | |")
    p(f"| statements in the A → B output | {env['TEND_STEPS']} | {env['MIGRA_STEPS']} | |")
    converge = {}
    for line in env["CONVERGE"].splitlines():
        tool, applied, by_tend, by_migra = line.split("\t")
        converge[tool] = (applied, by_tend, by_migra)
    for i, what in enumerate(["A → B output applies to a copy of A (psql)",
                              "that copy compared with B by tend",
                              "that copy compared with B by migra"]):
        p(f"| {what} | {converge['tend'][i]} | {converge['migra'][i]} | |")
    p()
    p("Runs (ms): " + "; ".join(
        f"{label} {fmt(ms(name))}" for label, name in [
            ("tend A→B", "tend_ab"), ("migra A→B", "migra_ab"),
            ("tend A→A", "tend_aa"), ("migra A→A", "migra_aa")]) + ".")
    p(f"Round by round, migra ÷ tend was {per_round('migra_ab', 'tend_ab'):.1f}× (A → B) and "
      f"{per_round('migra_aa', 'tend_aa'):.1f}× (A → A), medians of the rounds' ratios.")
    _, intro_a, intro_b, diff_ms, sequential, concurrent = env["BREAKDOWN"].split("\t")
    p()
    p(f"Inside one process (`examples/diff_timing`, medians of {n}): connecting and introspecting "
      f"A {float(intro_a):.0f} ms, B {float(intro_b):.0f} ms, the diff {float(diff_ms):.1f} ms: "
      f"{float(sequential):.0f} ms in all one side after the other; "
      f"{float(concurrent):.0f} ms with both sides introspected at once on two connections, "
      f"as the CLI does it.")
    p()
    target_ms = 200
    t = med("tend_ab")
    objects = int(env["OBJECTS_A"])
    p("| goal | target | result | met |")
    p("| --- | --- | --- | --- |")
    p(f"| `tend schema diff` between two databases of {objects:,} objects (introspection of both, "
      f"diff, start-up and output), median | ≤ {target_ms} ms | {t:.0f} ms | "
      f"{'yes' if t <= target_ms and objects >= 2000 else '**no**'} |")
    p(f"| faster than migra on the same pair, same run (A → B) | ≥ 10× | {ab:.1f}× | "
      f"{'yes' if ab >= 10 else '**no**'} |")


if __name__ == "__main__":
    main()
