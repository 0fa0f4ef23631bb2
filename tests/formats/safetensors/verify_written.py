#!/usr/bin/env python3
"""Checks that the reference `safetensors` package reads a file that t2's WriteSafetensors wrote.

usage: verify_written.py FILE EXPECTED_JSON
EXPECTED_JSON: {"metadata": {...}, "tensors": [{"name", "dtype", "shape", "hex"}, ...]} in the
order the writer was given. Exits 0 when names, dtypes, shapes, bytes, metadata and the header
key order all match; otherwise prints every mismatch and exits 1.
"""
import json
import struct
import sys

import torch
from safetensors import safe_open

DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
          torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
          torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def main() -> int:
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    errors = []
    with safe_open(path, framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        if metadata != expected["metadata"]:
            errors.append(f"metadata {metadata!r} != {expected['metadata']!r}")
        names = set(f.keys())
        want = {t["name"] for t in expected["tensors"]}
        if names != want:
            errors.append(f"tensor names {sorted(names)} != {sorted(want)}")
        for t in expected["tensors"]:
            if t["name"] not in names:
                continue
            got = f.get_tensor(t["name"])
            if DTYPES.get(got.dtype) != t["dtype"]:
                errors.append(f"{t['name']}: dtype {got.dtype} != {t['dtype']}")
            if list(got.shape) != t["shape"]:
                errors.append(f"{t['name']}: shape {list(got.shape)} != {t['shape']}")
            raw = got.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            if raw.hex() != t["hex"]:
                errors.append(f"{t['name']}: bytes {raw.hex()} != {t['hex']}")

    # The header keeps the writer's order, with __metadata__ first.
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header_text = f.read(n).decode("utf-8")
    keys = [k for k, _ in json.loads(header_text, object_pairs_hook=lambda kv: kv)]
    want_keys = (["__metadata__"] if expected["metadata"] else []) + \
        [t["name"] for t in expected["tensors"]]
    if keys != want_keys:
        errors.append(f"header key order {keys} != {want_keys}")
    if n % 8 != 0:
        errors.append(f"header length {n} is not a multiple of 8")

    for e in errors:
        print("verify_written:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
