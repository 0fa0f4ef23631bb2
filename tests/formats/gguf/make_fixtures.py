#!/usr/bin/env python3
"""Writes the reference data that gguf_test compares against, using the `gguf` package.

The `gguf` package (gguf-py, from the llama.cpp project) is an independent implementation of
the GGUF format and of ggml's dequantisation (numpy, float32), so agreeing with it bit for bit
checks the C++ reader and decoders against ggml's reference routines.

Output (all little-endian) under --out:
  dequant/<TYPE>.raw      random blocks of TYPE (finite f16 scale fields)
  dequant/<TYPE>.ref      gguf.quants.dequantize of those blocks, float32
  half/half_to_float.ref  every f16 bit pattern 0..65535 as float32 (numpy)
  half/float.in           float32 inputs (random bit patterns and edge cases)
  half/float_to_half.ref  numpy's float16 rounding of float.in, uint16
  half/float_to_bf16.ref  gguf's BF16 rounding (ggml_compute_fp32_to_bf16) of float.in, uint16
  writer.gguf             a GGUF from GGUFWriter: every metadata type, one tensor per type
  writer/<tensor>.ref     dequantised data of each tensor in writer.gguf, float32
  model/<tensor>.ref      leading rows of some tensors of the default model, dequantised,
                          when the model is present

The metadata and shapes in writer.gguf are mirrored as constants in gguf_test.cc.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

SEED = 20240611
BLOCKS_PER_TYPE = 512

# Byte offsets of the f16 scale fields inside one block (ggml-common.h layouts).
HALF_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def random_finite_halves(rng: np.random.Generator, n: int) -> np.ndarray:
    """Half the values small and well-scaled, half any finite f16 bit pattern (incl. subnormals)."""
    small = rng.uniform(-0.1, 0.1, n).astype(np.float16).view(np.uint16)
    bits = rng.integers(0, 1 << 16, n, dtype=np.uint32)
    exp = rng.integers(0, 31, n, dtype=np.uint32)  # 31 would be inf/NaN
    any_finite = ((bits & 0x83FF) | (exp << 10)).astype(np.uint16)
    return np.where(rng.random(n) < 0.5, small, any_finite).astype(np.uint16)


def random_blocks(rng: np.random.Generator, qtype: Q, n_blocks: int) -> np.ndarray:
    """Raw bytes of n_blocks blocks of qtype, shape (n_blocks, type_size)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == Q.F32:
        # Finite floats across many magnitudes (random bit patterns would mostly be huge).
        vals = (rng.standard_normal(n_blocks) * np.exp2(rng.integers(-30, 30, n_blocks)))
        return vals.astype(np.float32).view(np.uint8).reshape(n_blocks, type_size)
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for off in HALF_FIELDS.get(qtype, []):
        raw[:, off:off + 2] = random_finite_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    # F16 and BF16 keep fully random bit patterns (NaN, inf, subnormals): the test treats any
    # NaN as equal to any NaN.
    return raw


def dequant(raw: np.ndarray, qtype: Q) -> np.ndarray:
    return np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32).reshape(-1)


def write_dequant(out: Path, rng: np.random.Generator) -> None:
    d = out / "dequant"
    d.mkdir(parents=True, exist_ok=True)
    for qtype in TYPES:
        # Element types (block size 1) get as many elements as a Q4_0 run.
        n_blocks = BLOCKS_PER_TYPE if gguf.GGML_QUANT_SIZES[qtype][0] > 1 else BLOCKS_PER_TYPE * 32
        raw = random_blocks(rng, qtype, n_blocks)
        ref = dequant(raw, qtype)
        assert ref.size == n_blocks * gguf.GGML_QUANT_SIZES[qtype][0]
        raw.tofile(d / f"{qtype.name}.raw")
        ref.astype("<f4").tofile(d / f"{qtype.name}.ref")


def write_half(out: Path, rng: np.random.Generator) -> None:
    d = out / "half"
    d.mkdir(parents=True, exist_ok=True)
    all_halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    all_halves.view(np.float16).astype(np.float32).tofile(d / "half_to_float.ref")

    edge = np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e-8, 2.0**-24, 2.0**-25,
                     3 * 2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
                     np.inf, -np.inf, np.nan], dtype=np.float32)
    random_bits = rng.integers(0, 1 << 32, 200000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # Values in and around half range, where rounding matters.
    near = (rng.standard_normal(200000) * np.exp2(rng.integers(-26, 17, 200000))).astype(np.float32)
    # Exact ties between two halves (and between two subnormal halves).
    halves = random_finite_halves(rng, 50000).view(np.float16).astype(np.float32)
    ties = (halves.astype(np.float64) * (1 + 2.0**-11)).astype(np.float32)
    inputs = np.concatenate([edge, random_bits, near, ties]).astype(np.float32)
    inputs.tofile(d / "float.in")
    with np.errstate(over="ignore", invalid="ignore"):
        inputs.astype(np.float16).view(np.uint16).tofile(d / "float_to_half.ref")
    bf16 = gguf.quants.quantize(inputs, Q.BF16).view(np.uint16)
    bf16.astype("<u2").tofile(d / "float_to_bf16.ref")


def write_writer_gguf(out: Path, rng: np.random.Generator) -> None:
    path = out / "writer.gguf"
    w = gguf.GGUFWriter(str(path), arch="t2test")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62) - 7)
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", 0.1)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.str", "h\u00e9llo \u2713")
    w.add_key_value("t.empty", "", V.STRING)
    w.add_array("t.arr_str", ["alpha", "", "\u03b3"])
    w.add_key_value("t.arr_u8", [0, 255, 7], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr_i16", [-1, 2, -32768], V.ARRAY, sub_type=V.INT16)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_key_value("t.arr_u64", [2**64 - 1, 1], V.ARRAY, sub_type=V.UINT64)
    w.add_array("t.arr_f32", [0.5, -1.25, 3.0])
    w.add_key_value("t.arr_f64", [0.1, -2.5], V.ARRAY, sub_type=V.FLOAT64)
    w.add_array("t.arr_bool", [True, False, True])
    w.add_array("t.nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("t.nested_str", [["x"], ["y", "z"]])

    wd = out / "writer"
    wd.mkdir(parents=True, exist_ok=True)
    rows, cols = 3, 512
    for qtype in TYPES:
        name = f"w.{qtype.name}"
        if qtype == Q.F32:
            data = rng.standard_normal((rows, cols)).astype(np.float32)
            w.add_tensor(name, data)
            ref = data.reshape(-1)
        elif qtype == Q.F16:
            data = rng.standard_normal((rows, cols)).astype(np.float16)
            w.add_tensor(name, data)
            ref = data.astype(np.float32).reshape(-1)
        else:
            block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
            raw = random_blocks(rng, qtype, rows * cols // block_size)
            if qtype == Q.BF16:  # keep the writer's BF16 tensor finite
                raw = gguf.quants.quantize(rng.standard_normal(rows * cols).astype(np.float32),
                                           Q.BF16).view(np.uint8)
            raw = raw.reshape(rows, cols // block_size * type_size)
            w.add_tensor(name, raw, raw_dtype=qtype)
            ref = dequant(raw, qtype)
        ref.astype("<f4").tofile(wd / f"{name}.ref")
    # Other ranks: 1-D, 3-D and 4-D F32.
    for name, shape in [("v.1d", (7,)), ("v.3d", (2, 3, 5)), ("v.4d", (2, 1, 3, 4))]:
        data = rng.standard_normal(shape).astype(np.float32)
        w.add_tensor(name, data)
        data.reshape(-1).astype("<f4").tofile(wd / f"{name}.ref")

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_model(out: Path) -> None:
    home = Path(os.environ.get("T2_HOME", Path.home() / ".cache" / "t2serve"))
    model = home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not model.exists():
        # gguf_test fails with its own message; the other fixtures are still useful.
        print(f"make_fixtures: {model} missing, skipping model references", file=sys.stderr)
        return
    d = out / "model"
    d.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(str(model))
    wanted = {"token_embd.weight": 4, "blk.0.ffn_down.weight": None,
              "blk.0.attn_norm.weight": None, "output_norm.weight": None}
    for t in reader.tensors:
        if t.name not in wanted:
            continue
        raw = np.asarray(t.data)
        n_rows = wanted[t.name]
        if t.tensor_type not in (Q.F32, Q.F16):
            raw = raw.reshape(-1, raw.shape[-1])[:n_rows] if n_rows else raw
            ref = dequant(raw, t.tensor_type)
        else:
            raw = raw.reshape(-1)
            ref = raw.astype(np.float32)
        ref.astype("<f4").tofile(d / f"{t.name}.ref")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    write_dequant(args.out, rng)
    write_half(args.out, rng)
    write_writer_gguf(args.out, rng)
    write_model(args.out)
    print(f"make_fixtures: wrote {args.out}")


if __name__ == "__main__":
    main()
