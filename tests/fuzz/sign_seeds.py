#!/usr/bin/env python3
"""Writes the seed corpora of the libfbsign fuzz targets (canon, envelope,
root, manifest, assignment) into tests/fuzz/corpus/NAME/ from the golden
vectors tests/vectors/sign_vectors.json: the signed documents (valid) and
every verification check's document (near-valid: tampered fields, flipped
signature bits, wrong signers, replays, ...). Only vector envelopes go in,
so the fuzz_sign.h forgery oracle knows every signature they carry.
Run from the repository root: python3 tests/fuzz/sign_seeds.py"""
import json
import os
import re

V = json.load(open("tests/vectors/sign_vectors.json"))
OUT = "tests/fuzz/corpus"


def slug(s):
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def put(target, name, text):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, slug(name)), "w", encoding="utf-8") as f:
        f.write(text)


for c in V["canonical"]:
    put("canon", "vec_" + c["name"], c["input"])
docs = {d["name"]: d for d in V["documents"]}
for d in V["documents"]:
    env = d["envelope_canonical"]
    put("canon", "doc_" + d["name"], env)
    put("envelope", "doc_" + d["name"], env)
    put(d["type"], "doc_" + d["name"], env)
    # the same envelope with whitespace and another member order
    spaced = json.dumps(json.loads(env), indent=1, ensure_ascii=False)
    put(d["type"], "spaced_" + d["name"], spaced)
for c in V["checks"]:
    text = json.dumps(c["doc"], separators=(",", ":"))
    put(c["type"], c["name"], text)
    if c["type"] == "manifest":
        put("envelope", c["name"], text)
# a manifest offered as an assignment and an assignment as a root
put("assignment", "wrong_type_manifest", docs["manifest-291"]["envelope_canonical"])
put("root", "wrong_type_assignment", docs["assignment-canary"]["envelope_canonical"])
