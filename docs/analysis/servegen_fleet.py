#!/usr/bin/env python3
"""Summarises docs/analysis/servegen_fleet.sh's runs: issue 9's targets (>= 90 % fewer
requests waiting on a cold start than plain scale-to-zero, <= 10 % extra GPU cost) over a
whole ServeGen model's clients, as fleet totals and per client-day.

A client-day "with idle windows" has at least one 600-s window of its trace with no demand.
With --returns, the waits of a slice's opening busy period (`opening_cold_start_waits`) are
left out where the history before the slice holds no demand: that is the model's launch,
which no forecast can see coming (both policies wait there alike). -v lists client-days.
With --warm-fraction, sleeping pods are billed at the runs' `sizing.tiers.warm_cost_fraction`
(`cost_with_warm_fraction`: sleeping engines sharing GPUs) instead of as whole GPUs.
--engines-per-gpu=K adds what the simulator does not model when K sleeping engines share a
GPU with one awake at a time: the chance that a wake finds the GPU taken by another
engine's wake, each engine holding it for one cold start after its wake (until a pod of its
own is up), engines placed at random: 1 - (1 - a)^(K-1), `a` the mean over client-days of
wakes x 300 s / 86400 s; and the waits if each such wake became a cold start instead.

    python3 docs/analysis/servegen_fleet.py OUTDIR [m-large|m-mid] [--returns] [--warm-fraction] [--engines-per-gpu=K] [-v]
"""
import csv
import glob
import json
import os
import sys

out = sys.argv[1]
model = next((a for a in sys.argv[2:] if not a.startswith("-")), "m-large")
returns = "--returns" in sys.argv
cost_key = "cost_with_warm_fraction" if "--warm-fraction" in sys.argv else None
here = os.path.dirname(os.path.abspath(__file__))
data = os.environ.get("SLO_SCALER_DATA_DIR", os.path.join(here, "..", "..", "..", "shared", "data"))
traces = os.path.join(data, "traces", "servegen", "language", model)

rows = []
for path in sorted(glob.glob(os.path.join(out, "*-d*.json"))):
    if os.path.getsize(path) == 0:
        continue  # no request that day
    client, day = (int(x) for x in os.path.basename(path)[:-5].split("-d"))
    run = {p["name"]: p for p in json.load(open(path))["policies"]}
    plain, warm = run["scale-to-zero"], run["slo-scaler-warm"]
    with open(os.path.join(traces, f"chunk-{client}-trace.csv")) as f:
        windows = [(float(r[0]), float(r[1])) for r in csv.reader(f) if r]
    start = (day - 1) * 86400
    idle = sum(1 for t, r in windows if start <= t < start + 86400 and r == 0)
    launch = not any(r > 0 for t, r in windows if t < start)
    def waits(p):
        w = p["requests_waited_on_cold_start"]
        return w - p["scale_to_zero"]["opening_cold_start_waits"] if returns and launch else w
    def cost(p):
        return p["scale_to_zero"][cost_key] if cost_key else p["cost"]
    rows.append(dict(client=client, day=day, requests=plain["requests"], idle=idle,
                     wa=waits(plain), wb=waits(warm), ca=cost(plain), cb=cost(warm),
                     aa=plain["attainment"]["both"], ab=warm["attainment"]["both"],
                     wakes=warm["scale_to_zero"]["wakes"]))

def line(sel, label):
    if not sel:
        return
    wa, wb = sum(r["wa"] for r in sel), sum(r["wb"] for r in sel)
    ca, cb = sum(r["ca"] for r in sel), sum(r["cb"] for r in sel)
    n = sum(r["requests"] for r in sel)
    att = lambda k: sum(r[k] * r["requests"] for r in sel) / n * 100
    with_waits = [r for r in sel if r["wa"] > 0]
    fewer = lambda r: r["wb"] * 10 <= r["wa"]
    cheap = lambda r: r["cb"] <= 1.10 * r["ca"] + 1e-9
    print(f"| {label} | {len(sel)} | {n} | {wa} → {wb} ({(wb - wa) / max(wa, 1) * 100:+.1f} %) "
          f"| ${ca:.2f} → ${cb:.2f} ({(cb - ca) / ca * 100:+.1f} %) | {att('aa'):.2f} → {att('ab'):.2f} % "
          f"| {sum(map(fewer, with_waits))}/{len(with_waits)} | {sum(map(cheap, sel))}/{len(sel)} "
          f"| {sum(1 for r in with_waits if fewer(r) and cheap(r))}/{len(with_waits)} |")

print("| client-days | n | requests | cold-start waits, plain → warm pool | GPU cost, plain → warm pool "
      "| attainment (both) | ≥ 90 % fewer waits (of those with any) | ≤ 10 % extra cost | both |")
print("|---|---|---|---|---|---|---|---|---|")
for day in (1, 2):
    line([r for r in rows if r["day"] == day and r["idle"] > 0], f"day {day}, with idle windows")
    line([r for r in rows if r["day"] == day and r["idle"] == 0], f"day {day}, never idle")
line([r for r in rows if r["idle"] > 0], "both days, with idle windows")
line(rows, "all")
if "-v" in sys.argv:
    print("\nday client requests idle-windows waits(plain warm) cost(plain warm)")
    for r in sorted(rows, key=lambda r: (r["day"], -r["wa"])):
        if r["idle"]:
            print(r["day"], r["client"], r["requests"], r["idle"], r["wa"], r["wb"],
                  f"{r['ca']:.2f} {r['cb']:.2f} {(r['cb'] / r['ca'] - 1) * 100:+.1f}%")

k = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--engines-per-gpu=")), None)
if k:
    idle = [r for r in rows if r["idle"] > 0]
    a = sum(r["wakes"] * 300 / 86400 for r in rows) / len(rows)
    p = 1 - (1 - a) ** (k - 1)
    wa, wb = sum(r["wa"] for r in idle), sum(r["wb"] for r in idle)
    wc = wb + p * (wa - wb)
    print(f"\n{k} engines per GPU: {sum(r['wakes'] for r in rows)} wakes, mean occupancy {a:.4f}, "
          f"P(a wake finds its GPU taken) {p:.3f}; waits on client-days with idle windows "
          f"{wa} → {wb} as simulated, ≈ {wc:.0f} ({(wc - wa) / wa * 100:+.1f} %) if each such wake "
          f"became a cold start")
