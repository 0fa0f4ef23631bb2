#!/usr/bin/env python3
"""Writes safetensors fixtures with the reference `safetensors` package for safetensors_test.

Layout under --out:
  basic.safetensors            every dtype t2 reads, 0-d and zero-size tensors, metadata
  basic.expected.json          per tensor: dtype, shape, raw-bytes file, float32 file
  sharded/                     model-0000{1,2}-of-00002.safetensors + index json
  sharded.expected.json
  single/model.safetensors     a one-file checkpoint
  single.expected.json
  expected/*.raw, *.f32        raw little-endian bytes; torch's float32 conversion
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
from safetensors.torch import save_file

FLOAT_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.float64: "F64"}
DTYPE_NAMES = {**FLOAT_DTYPES, torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
               torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
FLT_MAX = float(np.finfo(np.float32).max)


def raw_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def basic_tensors() -> dict:
    g = torch.Generator().manual_seed(1234)
    specials = [0.0, -0.0, 1.0, -2.5, math.inf, -math.inf, math.nan, 1e-45, 1.17549435e-38,
                FLT_MAX, -FLT_MAX, 65504.0, 6e-8, 1e-40]
    f32 = torch.cat([torch.tensor(specials, dtype=torch.float32),
                     torch.randn(22, generator=g)]).reshape(3, 12)
    all16 = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16)  # wraps: every bit pattern
    # Doubles around the float32 overflow threshold (FLT_MAX + half an ulp rounds to inf on a
    # tie), subnormal and tiny doubles, and ordinary values that need rounding.
    f64_values = [0.1, -1.0 / 3.0, 1e300, -1e300, FLT_MAX + 2.0**103, FLT_MAX + 2.0**102,
                  -(FLT_MAX + 2.0**103), 5e-324, 1e-50, 1.4e-45, 7e-46, math.nan, math.inf,
                  -0.0, 123456789.123456789, 2.0**-149 * 1.5]
    return {
        "f32.matrix": f32,
        "f32.scalar": torch.tensor(3.5, dtype=torch.float32),
        "f32.empty": torch.zeros(0, 5, dtype=torch.float32),
        "f16.all_bits": all16.clone().view(torch.float16),
        "f16.matrix": (torch.randn(4, 6, generator=g) * 100).to(torch.float16),
        "bf16.all_bits": all16.clone().view(torch.bfloat16),
        "bf16.cube": torch.randn(2, 3, 4, generator=g).to(torch.bfloat16),
        "f64.vec": torch.tensor(f64_values, dtype=torch.float64),
        "f64.scalar": torch.tensor(-7.25, dtype=torch.float64),
        "i64.vec": torch.tensor([0, -1, 2**62, -(2**63), 2**63 - 1], dtype=torch.int64),
        "i32.matrix": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "i32.scalar": torch.tensor(-42, dtype=torch.int32),
        "i16.vec": torch.tensor([-32768, 0, 32767], dtype=torch.int16),
        "i8.vec": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
        "u8.image": torch.arange(0, 24, dtype=torch.uint8).reshape(2, 3, 4),
        "u8.zero": torch.zeros(0, dtype=torch.uint8),
        "bool.mask": torch.tensor([[True, False, True], [False, False, True]]),
        "unicodé.wéight": torch.ones(2, 2, dtype=torch.float32),
        "empty.high_rank": torch.zeros(2, 0, 3, 1, dtype=torch.bfloat16),
    }


def write_expected(out: str, label: str, tensors: dict, metadata: dict, files: dict) -> None:
    """files: tensor name -> path of the file holding it, relative to out."""
    exp_dir = os.path.join(out, "expected")
    os.makedirs(exp_dir, exist_ok=True)
    entries = {}
    for i, (name, t) in enumerate(tensors.items()):
        stem = f"{label}.{i}"
        with open(os.path.join(exp_dir, stem + ".raw"), "wb") as f:
            f.write(raw_bytes(t))
        entry = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                 "raw": f"expected/{stem}.raw", "file": files[name], "f32": None}
        if t.dtype in FLOAT_DTYPES:
            with open(os.path.join(exp_dir, stem + ".f32"), "wb") as f:
                f.write(raw_bytes(t.to(torch.float32)))
            entry["f32"] = f"expected/{stem}.f32"
        entries[name] = entry
    with open(os.path.join(out, f"{label}.expected.json"), "w", encoding="utf-8") as f:
        json.dump({"metadata": metadata, "tensors": entries}, f, ensure_ascii=False, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)

    tensors = basic_tensors()
    metadata = {"format": "pt", "note": "héllo ✓", "empty": ""}
    save_file(tensors, os.path.join(out, "basic.safetensors"), metadata=metadata)
    write_expected(out, "basic", tensors, metadata,
                   {name: "basic.safetensors" for name in tensors})

    g = torch.Generator().manual_seed(99)
    shards = {
        "model-00001-of-00002.safetensors": {
            "model.embed_tokens.weight": torch.randn(8, 4, generator=g),
            "model.layers.0.mlp.weight": torch.randn(4, 4, generator=g).to(torch.bfloat16),
        },
        "model-00002-of-00002.safetensors": {
            "model.layers.1.mlp.weight": torch.randn(4, 4, generator=g).to(torch.float16),
            "model.norm.weight": torch.ones(4),
            "lm_head.weight": torch.randn(8, 4, generator=g),
        },
    }
    sharded_dir = os.path.join(out, "sharded")
    os.makedirs(sharded_dir, exist_ok=True)
    weight_map, all_tensors, files, total = {}, {}, {}, 0
    for shard, shard_tensors in shards.items():
        save_file(shard_tensors, os.path.join(sharded_dir, shard), metadata={"format": "pt"})
        for name, t in shard_tensors.items():
            weight_map[name] = shard
            all_tensors[name] = t
            files[name] = f"sharded/{shard}"
            total += t.numel() * t.element_size()
    with open(os.path.join(sharded_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    write_expected(out, "sharded", all_tensors, {}, files)

    single_dir = os.path.join(out, "single")
    os.makedirs(single_dir, exist_ok=True)
    single = {"a.weight": torch.randn(3, 2, generator=g), "b.bias": torch.zeros(3)}
    save_file(single, os.path.join(single_dir, "model.safetensors"))
    write_expected(out, "single", single, {}, {n: "single/model.safetensors" for n in single})
    print(f"wrote safetensors fixtures to {out}")


if __name__ == "__main__":
    main()
