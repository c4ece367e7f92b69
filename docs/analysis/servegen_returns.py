#!/usr/bin/env python3
"""How predictable are a ServeGen model's returns from idleness, from one day of history?
No simulation: the traces alone (issue 9, docs/BENCHMARKS.md, *What one day of history can
predict*).

For day 2 of every client (day 1 is the history), a *return* is a 600-s window with demand
after one without. Its weight is the demand of its first 300 s (rate x 300 s): the requests
a cold start of 300 s would hold if no pod were there. A return is *foreseen at +-k bins*
when day 1 had demand within k windows (10 min each) of the same time of day, which is
what a time-of-day forecaster can know. Clients are grouped by how much of day 2 they are
idle. The last columns are what holding one warm GPU through every idle window of the day
costs (A100 at $1.30/h, the embedded backtest fleet's price; a sleeping pod holds its GPU).

    python3 docs/analysis/servegen_returns.py [m-large|m-mid]
"""
import csv
import glob
import os
import sys

model = sys.argv[1] if len(sys.argv) > 1 else "m-large"
here = os.path.dirname(os.path.abspath(__file__))
data = os.environ.get("SLO_SCALER_DATA_DIR", os.path.join(here, "..", "..", "..", "shared", "data"))
traces = os.path.join(data, "traces", "servegen", "language", model)
WINDOW_S, DAY = 600, 144  # windows per day
A100_PER_H = 1.30

groups = {}
for path in sorted(glob.glob(os.path.join(traces, "chunk-*-trace.csv"))):
    with open(path) as f:
        rate = {int(float(r[0]) // WINDOW_S): float(r[1]) for r in csv.reader(f) if r}
    day2 = range(DAY, 2 * DAY)
    if not any(rate.get(i, 0) > 0 for i in day2):
        continue
    idle = sum(1 for i in day2 if rate.get(i, 0) == 0)
    if idle == 0:
        continue
    hours = idle * WINDOW_S / 3600
    g = "< 12 h" if hours < 12 else ("12-20 h" if hours <= 20 else "> 20 h")
    s = groups.setdefault(g, dict(clients=0, idle_h=0.0, total=0.0, unseen1=0.0, unseen6=0.0))
    s["clients"] += 1
    s["idle_h"] += hours
    for i in day2:
        if rate.get(i, 0) > 0 and rate.get(i - 1, 0) == 0:
            w = rate[i] * 300
            s["total"] += w
            for k, key in ((1, "unseen1"), (6, "unseen6")):
                if not any(rate.get(i - DAY + j, 0) > 0 for j in range(-k, k + 1)):
                    s[key] += w

print(f"{model}, day 2 (day 1 as history)")
print("| idle on day 2 | clients | return demand (first 300 s) | not foreseen at ±10 min | at ±1 h "
      "| idle GPU-hours | one warm A100 through them |")
print("|---|---|---|---|---|---|---|")
tot = dict(clients=0, idle_h=0.0, total=0.0, unseen1=0.0, unseen6=0.0)
for g in ("< 12 h", "12-20 h", "> 20 h"):
    s = groups.get(g)
    if not s:
        continue
    for k in tot:
        tot[k] += s[k]
for g, s in [(g, groups[g]) for g in ("< 12 h", "12-20 h", "> 20 h") if g in groups] + [("all", tot)]:
    print(f"| {g} | {s['clients']} | {s['total']:.0f} | {s['unseen1']:.0f} ({s['unseen1'] / s['total'] * 100:.0f} %) "
          f"| {s['unseen6']:.0f} ({s['unseen6'] / s['total'] * 100:.0f} %) | {s['idle_h']:.0f} "
          f"| ${s['idle_h'] * A100_PER_H:.0f} |")
