#!/usr/bin/env python3
"""Writes small valid GGUF and safetensors files, made by the reference Python packages, as
seed corpora for the fuzzers (scripts/fuzz.sh). Kept small: libFuzzer mutates seeds, and
short inputs mutate into interesting ones faster.

usage: make_seeds.py --out DIR     (writes DIR/gguf/*.gguf and DIR/safetensors/*.safetensors)
"""
import argparse
import os

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize
from safetensors.torch import save


def safetensors_seeds(out: str) -> None:
    seeds = {
        "empty": ({}, None),
        "metadata_only": ({}, {"format": "pt", "k": "v"}),
        "one_f32": ({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, None),
        "scalar_and_empty": ({"s": torch.tensor(1.5), "e": torch.zeros(0, 2)}, {"a": "b"}),
        "mixed": ({
            "f16": torch.linspace(-2, 2, 5).to(torch.float16),
            "bf16": torch.linspace(-1, 1, 3).to(torch.bfloat16),
            "f64": torch.tensor([0.25, 1e300]),
            "i64": torch.tensor([1, -1]),
            "i32": torch.tensor([7], dtype=torch.int32),
            "i16": torch.tensor([-3], dtype=torch.int16),
            "i8": torch.tensor([-1, 2], dtype=torch.int8),
            "u8": torch.tensor([255], dtype=torch.uint8),
            "b": torch.tensor([True, False]),
        }, {"format": "pt"}),
    }
    for name, (tensors, metadata) in seeds.items():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(save(tensors, metadata=metadata))


def gguf_seeds(out: str) -> None:
    def write(name, fill):
        w = GGUFWriter(os.path.join(out, name + ".gguf"), "llama")
        fill(w)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    write("empty", lambda w: None)

    def metadata(w):
        w.add_uint8("t.u8", 200)
        w.add_int8("t.i8", -5)
        w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -300)
        w.add_uint32("t.u32", 4000000000)
        w.add_int32("t.i32", -7)
        w.add_uint64("t.u64", 2**63)
        w.add_int64("t.i64", -(2**40))
        w.add_float32("t.f32", 0.5)
        w.add_float64("t.f64", -1e300)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "héllo")
        w.add_array("t.ints", [1, 2, 3])
        w.add_array("t.strs", ["a", "bc", ""])
        w.add_array("t.floats", [0.5, 1.5])
        w.add_array("t.nested", [[1, 2], [3]])
        w.add_context_length(2048)
    write("metadata", metadata)

    def tensors(w):
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_tensor("f32", np.arange(8, dtype=np.float32).reshape(2, 4))
        w.add_tensor("f16", np.linspace(-1, 1, 4).astype(np.float16))
        w.add_tensor("scalarish", np.array([3.0], dtype=np.float32))
        for qtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0):
            data = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
            q = quantize(data, qtype)
            w.add_tensor(qtype.name.lower(), q, raw_dtype=qtype)
    write("tensors", tensors)

    def aligned(w):
        w.add_custom_alignment(64)
        w.add_tensor("a", np.ones(3, dtype=np.float32))
        w.add_tensor("b", np.ones(5, dtype=np.float32))
    write("alignment64", aligned)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    for sub, make in (("safetensors", safetensors_seeds), ("gguf", gguf_seeds)):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        make(os.path.join(out, sub))
    print(f"wrote fuzz seeds to {out}")


if __name__ == "__main__":
    main()
