#!/usr/bin/env python3
"""Generate tests/vectors/sign_vectors.json: firebreak signing test vectors.

Written against the Python `cryptography` package and the standard library
only -- deliberately NOT through libfbsign -- so that the C library is checked
against an independent implementation of the format (tests/unit/
test_sign_vectors.c). Deterministic: Ed25519 signatures (RFC 8032) depend only
on the key and the message. Run from the repository root:

    python3 tests/vectors/gen.py > tests/vectors/sign_vectors.json
"""
import base64
import copy
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PREFIX = "firebreak/v1/"
NOW = 1700000100


def b64(b):
    return base64.b64encode(b).decode()


def canonical(obj):
    """Sorted keys (code-point order == UTF-8 byte order), no whitespace,
    UTF-8 text, only the mandatory escapes; integers only."""
    def check(v):
        if isinstance(v, float):
            raise ValueError("real number")
        if isinstance(v, dict):
            for x in v.values():
                check(x)
        if isinstance(v, list):
            for x in v:
                check(x)
    check(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def message(doc_type, signed):
    return (PREFIX + doc_type + "\n").encode() + canonical(signed)


class Key:
    def __init__(self, name):
        self.name = name
        self.seed = hashlib.sha256(b"firebreak test vector key " + name.encode()).digest()
        self.sk = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.pk = self.sk.public_key().public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)
        self.keyid = hashlib.blake2b(self.pk, digest_size=32).digest()[:8].hex()

    def sign(self, msg):
        return self.sk.sign(msg)


KEYS = {n: Key(n) for n in ["root1", "root2", "root3", "release1", "release2", "release3",
                            "online1", "attacker"]}


def sig_entry(key, doc_type, signed):
    return {"keyid": key.keyid, "sig": b64(key.sign(message(doc_type, signed)))}


def envelope(doc_type, signed, signers):
    return {"signed": signed,
            "signatures": [sig_entry(KEYS[s], doc_type, signed) for s in signers]}


def role(names, threshold):
    return {"keyids": [KEYS[n].keyid for n in names], "threshold": threshold}


def root_doc(version, root_keys, root_threshold, release_keys, expires=2000000000):
    used = set(root_keys) | set(release_keys) | {"online1"}
    return {"_type": "root", "version": version, "expires": expires,
            "keys": {KEYS[n].keyid: {"public": b64(KEYS[n].pk)} for n in sorted(used)},
            "roles": {"root": role(root_keys, root_threshold),
                      "release": role(release_keys, 2),
                      "online": role(["online1"], 1)}}


CONTENT = {291: b"firebreak test vector channel file 291\n",
           292: b"firebreak test vector channel file 292\n"}


def manifest_doc(channel, version):
    c = CONTENT[channel]
    return {"_type": "manifest", "channel": channel, "version": version,
            "sha256": hashlib.sha256(c).hexdigest(), "size": len(c),
            "templates": [{"id": 1, "version": 3}, {"id": 2, "version": 1}],
            "created": 1700000000, "expires": 1800000000}


def main():
    root1 = root_doc(1, ["root1", "root2"], 2, ["release1", "release2", "release3"])
    root2 = root_doc(2, ["root2", "root3"], 2, ["release1", "release2", "release3"])
    m291 = manifest_doc(291, 7)
    m292 = manifest_doc(292, 3)
    env_root1 = envelope("root", root1, ["root1", "root2"])
    env_root2 = envelope("root", root2, ["root1", "root2", "root3"])
    env_m291 = envelope("manifest", m291, ["release1", "release2"])
    env_m292 = envelope("manifest", m292, ["release2", "release3"])

    def entry(m, env):
        return {"version": m["version"], "sha256": m["sha256"], "size": m["size"],
                "manifest": env}
    assign = {"_type": "assignment", "audience": "canary", "sequence": 42,
              "issued": 1700000000, "expires": 1700003600, "root_version": 1,
              "channels": {"291": entry(m291, env_m291), "292": entry(m292, env_m292)}}
    env_assign = envelope("assignment", assign, ["online1"])

    docs = [("root-v1", "root", root1, ["root1", "root2"]),
            ("root-v2", "root", root2, ["root1", "root2", "root3"]),
            ("manifest-291", "manifest", m291, ["release1", "release2"]),
            ("manifest-292", "manifest", m292, ["release2", "release3"]),
            ("assignment-canary", "assignment", assign, ["online1"])]
    out_docs = []
    for name, t, signed, signers in docs:
        msg = message(t, signed)
        env = envelope(t, signed, signers)
        out_docs.append({"name": name, "type": t, "signed": signed,
                         "message": msg.decode("utf-8"),
                         "message_sha256": hashlib.sha256(msg).hexdigest(),
                         "signatures": [{"key": s, **sig_entry(KEYS[s], t, signed)}
                                        for s in signers],
                         "envelope_canonical": canonical(env).decode("utf-8")})

    # --- verification cases: each names the trusted root, the document and
    # the expected result (an fb_rc name).
    checks = []

    def check(name, doc_type, doc, expect, now=NOW, root="root-v1", **kw):
        c = {"name": name, "type": doc_type, "root": root, "now": now, "doc": doc,
             "expect": expect}
        c.update(kw)
        checks.append(c)

    check("root v1 trusted", "root", env_root1, "FB_OK", mode="trusted")
    check("root v1 expired", "root", env_root1, "FB_EEXPIRED", mode="trusted", now=2000000000)
    check("root v1 -> v2", "root", env_root2, "FB_OK", mode="update")
    check("root v2 signed by one old root key", "root",
          envelope("root", root2, ["root2", "root3"]), "FB_ETHRESHOLD", mode="update")
    check("root v2 without its own threshold", "root",
          envelope("root", root2, ["root1", "root2"]), "FB_ETHRESHOLD", mode="update")
    check("root v1 replayed as update", "root", env_root1, "FB_EROLLBACK", mode="update")
    root3 = root_doc(3, ["root1", "root2"], 2, ["release1", "release2", "release3"])
    check("root version skip", "root", envelope("root", root3, ["root1", "root2"]),
          "FB_EINVAL", mode="update")

    check("manifest ok", "manifest", env_m291, "FB_OK", content=CONTENT[291].decode(),
          channel=291)
    check("manifest served for another channel", "manifest", env_m291, "FB_EINVAL",
          content=CONTENT[291].decode(), channel=292)
    check("manifest content byte changed", "manifest", env_m291, "FB_ESIG",
          content=CONTENT[291].decode().replace("291", "281"), channel=291)
    t = copy.deepcopy(env_m291)
    t["signed"]["version"] = 8
    check("manifest field tampered", "manifest", t, "FB_ESIG")
    t = copy.deepcopy(env_m291)
    s = bytearray(base64.b64decode(t["signatures"][1]["sig"]))
    s[10] ^= 0x01
    t["signatures"][1]["sig"] = b64(bytes(s))
    check("manifest signature bit flipped (forgery)", "manifest", t, "FB_ESIG")
    t = copy.deepcopy(env_m291)
    t["signatures"][1]["sig"] = b64(base64.b64decode(t["signatures"][1]["sig"])[:63])
    check("manifest signature truncated", "manifest", t, "FB_ESIG")
    t = copy.deepcopy(env_m291)
    t["signatures"][1]["sig"] = b64(base64.b64decode(t["signatures"][1]["sig"]) + b"\0")
    check("manifest signature oversized", "manifest", t, "FB_ESIG")
    check("manifest one release signature", "manifest",
          envelope("manifest", m291, ["release1"]), "FB_ETHRESHOLD")
    check("manifest same key twice", "manifest",
          envelope("manifest", m291, ["release1", "release1"]), "FB_ETHRESHOLD")
    check("manifest unknown key", "manifest",
          envelope("manifest", m291, ["release1", "attacker"]), "FB_ETHRESHOLD")
    check("manifest online and root keys are not release keys", "manifest",
          envelope("manifest", m291, ["release1", "online1", "root1"]), "FB_ETHRESHOLD")
    check("manifest expired", "manifest", env_m291, "FB_EEXPIRED", now=1800000000)
    check("manifest signed in the root context", "manifest",
          {"signed": m291, "signatures": [sig_entry(KEYS[k], "root", m291)
                                          for k in ["release1", "release2"]]}, "FB_ESIG")
    check("manifest presented as a root", "root", env_m291, "FB_EINVAL", mode="update")
    check("manifest with a real number", "manifest",
          {"signed": dict(m291, size=39.0), "signatures": []}, "FB_EINVAL")

    check("assignment ok", "assignment", env_assign, "FB_OK", last_sequence=41)
    check("assignment replayed (equal sequence)", "assignment", env_assign, "FB_EROLLBACK",
          last_sequence=42)
    check("assignment older sequence", "assignment", env_assign, "FB_EROLLBACK",
          last_sequence=100)
    check("assignment expired", "assignment", env_assign, "FB_EEXPIRED", now=1700003600,
          last_sequence=0)
    check("assignment signed by a release key", "assignment",
          envelope("assignment", assign, ["release1"]), "FB_ETHRESHOLD", last_sequence=0)
    mix = copy.deepcopy(assign)
    mix["channels"]["291"]["manifest"] = env_m292
    check("assignment mix-and-match (292's manifest under 291)", "assignment",
          envelope("assignment", mix, ["online1"]), "FB_EINVAL", last_sequence=0)
    t = copy.deepcopy(env_assign)
    t["signed"]["sequence"] = 43
    check("assignment sequence tampered", "assignment", t, "FB_ESIG", last_sequence=0)
    weak = copy.deepcopy(assign)
    weak["channels"]["292"]["manifest"] = envelope("manifest", m292, ["release3"])
    check("assignment embeds an under-signed manifest", "assignment",
          envelope("assignment", weak, ["online1"]), "FB_ETHRESHOLD", last_sequence=0)
    check("assignment signature presented as a manifest", "manifest",
          {"signed": m291, "signatures": [sig_entry(KEYS["release1"], "assignment", m291),
                                          sig_entry(KEYS["release2"], "assignment", m291)]},
          "FB_ESIG")

    canon = [
        {"name": "sorting, escapes, UTF-8",
         "input": '{"b":[1,-2,{"z":true,"a":null}], "a":"x\\u00e9\\n\\u0001\\"/\\\\\\t",'
                  ' "\\ud83d\\ude00":1, "\\uff5a":2, "\\u00e9":3, "A":false}'},
        {"name": "integers", "input": '{"max":9223372036854775807,"min":-9223372036854775808,'
                                      '"zero":-0}'},
    ]
    for c in canon:
        c["canonical"] = canonical(json.loads(c["input"])).decode("utf-8")
    canon += [{"name": "real refused", "input": '{"a":1.0}', "error": "FB_EINVAL"},
              {"name": "exponent refused", "input": '{"a":1e2}', "error": "FB_EINVAL"},
              {"name": "duplicate key refused", "input": '{"a":1,"a":1}', "error": "FB_EINVAL"},
              {"name": "top-level array refused", "input": '[]', "error": "FB_EINVAL"}]

    out = {"format": "firebreak signing test vectors v1",
           "context": PREFIX + "<type>\\n || canonical(signed)",
           "keys": [{"name": k.name, "seed": k.seed.hex(), "public": b64(k.pk),
                     "keyid": k.keyid} for k in KEYS.values()],
           "canonical": canon, "documents": out_docs, "checks": checks}
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
