"""Evaluates a CRD's x-kubernetes-validations (CEL) rules on custom resources with
cel-python (a real CEL implementation), as the API server would at each schema node.

usage: check_cel.py CRD.yaml OBJECT.json...
Prints one JSON line per object: a list of {"path", "rule", "message"} for each rule that
is false (or fails to evaluate). Exit status 2 if a rule does not compile.
"""
import json
import sys

import celpy
import yaml


def walk(schema, value, path, env, out):
    for v in schema.get("x-kubernetes-validations", []):
        try:
            prog = env.program(env.compile(v["rule"]))
        except Exception as e:  # a rule the API server would refuse too
            print(f"rule does not compile: {v['rule']}: {e}", file=sys.stderr)
            sys.exit(2)
        try:
            ok = bool(prog.evaluate({"self": celpy.json_to_cel(value)}))
        except Exception as e:
            ok = False
            v = dict(v, message=f"{v.get('message', '')} (evaluation error: {e})")
        if not ok:
            out.append({"path": path, "rule": v["rule"], "message": v.get("message", "")})
    if isinstance(value, dict):
        for k, sub in schema.get("properties", {}).items():
            if k in value and value[k] is not None:
                walk(sub, value[k], f"{path}.{k}", env, out)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            walk(schema["items"], item, f"{path}[{i}]", env, out)


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    schema = docs[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    env = celpy.Environment()
    for f in sys.argv[2:]:
        out = []
        walk(schema, json.load(open(f)), "", env, out)
        print(json.dumps(out))


main()
