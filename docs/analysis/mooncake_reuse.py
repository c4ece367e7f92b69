#!/usr/bin/env python3
"""Prefix reuse on the Mooncake conversation trace: how much of the prompt is a prefix seen
before (an unbounded cache's hit rate), and how long after its previous use a block is used
again (reuse distance). Evidence for docs/BENCHMARKS.md, *Why the victim ranking cannot move
TTFT on Mooncake*; nothing of it feeds the product.

    python3 docs/analysis/mooncake_reuse.py [path/to/conversation_trace.jsonl]
"""
import bisect
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
data = os.environ.get("SLO_SCALER_DATA_DIR", os.path.join(here, "..", "..", "..", "shared", "data"))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(data, "traces", "mooncake", "conversation_trace.jsonl")

BLOCK = 512  # tokens per hash id (Mooncake's block)
last_use, distances = {}, []
prompt_tokens = hit_tokens = requests = 0
end_s = 0.0
with open(path) as f:
    for line in f:
        r = json.loads(line)
        t = r["timestamp"] / 1000.0
        end_s = t
        requests += 1
        prompt_tokens += r["input_length"]
        hit = 0
        for h in r["hash_ids"]:  # only a leading run of known blocks is a prefix hit
            if h not in last_use:
                break
            distances.append(t - last_use[h])
            hit += 1
        hit_tokens += min(hit * BLOCK, r["input_length"])
        for h in r["hash_ids"]:
            last_use[h] = t
distances.sort()
print(f"requests {requests} over {end_s:.0f} s ({requests / end_s:.2f} req/s), "
      f"mean prompt {prompt_tokens / requests:.0f} tokens, "
      f"prompt tokens/s {prompt_tokens / end_s:.0f}")
print(f"unbounded cache: {hit_tokens / prompt_tokens * 100:.1f} % of prompt tokens hit")
for q in (30, 60, 120, 300, 600):
    share = bisect.bisect_right(distances, q) / len(distances)
    print(f"reused within {q:4d} s: {share * 100:.1f} % of prefix-hit blocks")
