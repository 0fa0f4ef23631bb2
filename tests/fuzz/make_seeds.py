#!/usr/bin/env python3
"""Writes small valid inputs, made by the reference Python packages where there is one, as
seed corpora for the fuzzers (scripts/fuzz.sh): one folder per target under --out, each
input in that target's format (see the header of tests/fuzz/<target>_fuzz.cc). Kept small:
libFuzzer mutates seeds, and short inputs mutate into interesting ones faster. Nothing is
downloaded.

usage: make_seeds.py --out DIR     (writes DIR/<target>/*)
"""
import argparse
import json
import os
import shutil
import subprocess

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize
from safetensors.torch import save
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def write_seeds(out: str, seeds: dict) -> None:
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


# ---------------------------------------------------------------------------------------------
# tokenizer_json: tokenizer.json [NUL tokenizer_config.json], trained here by HF tokenizers on
# a few lines, in the pipeline shapes t2 loads (GPT-2 byte-level, Llama-3 / Qwen2 split regex,
# NFC + digits, SentencePiece-style Metaspace and the legacy Prepend/Replace form).

CORPUS = ["Hello world, hello tokenizer!", "The quick brown fox jumps over 12 lazy dogs.",
          "don't stop: 3.14 < 42", "héllo wörld 你好 😀", "  indented\n\tcode() {}"] * 4
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def byte_level(split=None, normalizer=None, digits=False, specials=("<|endoftext|>",),
               ignore_merges=False, bos=None):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    steps = []
    if digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    if split is not None:
        steps.append(pre_tokenizers.Split(Regex(split), behavior="isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None))
    tok.pre_tokenizer = steps[0] if len(steps) == 1 else pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    return tok


def sentencepiece_like(legacy):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if legacy:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                               normalizers.Replace(" ", "\u2581")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    # As in Llama-2's tokenizer.json: the byte tokens are vocabulary, not added tokens.
    state = json.loads(tok.to_str())
    state["added_tokens"] = [t for t in state["added_tokens"] if not t["content"].startswith("<0x")]
    return Tokenizer.from_str(json.dumps(state))


def tiny(byte_level_pipeline):
    """A hand-sized vocabulary: short seeds that mutate quickly, with every optional part the
    loader reads (post-processor Sequence, TemplateProcessing, added tokens)."""
    if byte_level_pipeline:
        vocab = {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4, "1": 5}
        merges = [("a", "b"), ("\u0120", "ab")]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    else:
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "\u2581": 4, "a": 5, "\u2581a": 6}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[("\u2581", "a")], unk_token="<unk>",
                                   byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<|im_end|>"])
    end = tok.token_to_id("<|im_end|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|im_end|> $A <|im_end|>",
                                      special_tokens=[("<|im_end|>", end)])])
    return tok


def tokenizer_json_seeds(out: str) -> None:
    added = [AddedToken("<think>", normalized=True), AddedToken("[MASK]", special=True, lstrip=True,
                                                                rstrip=True, normalized=False)]
    qwen2 = byte_level(LLAMA3_SPLIT.replace("{1,3}", ""), normalizers.NFC(),
                       specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    qwen2.add_tokens(added)
    seeds = {
        "gpt2": (byte_level(), {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}),
        "llama3": (byte_level(LLAMA3_SPLIT, specials=("<|begin_of_text|>", "<|eot_id|>"),
                              ignore_merges=True, bos="<|begin_of_text|>"),
                   {"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}}),
        "qwen2_nfc_chatml": (qwen2, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                                     "chat_template": CHATML}),
        "digits_nfkd": (byte_level(normalizer=normalizers.NFKD(), digits=True), None),
        "spm_metaspace": (sentencepiece_like(False), {"bos_token": "<s>", "eos_token": "</s>",
                                                      "add_bos_token": True}),
        "spm_legacy": (sentencepiece_like(True), {"unk_token": "<unk>", "chat_template": [
            {"name": "default", "template": "{{ bos_token }}[INST] x [/INST]"}]}),
        "tiny_byte_level": (tiny(True), {"eos_token": {"content": "<|im_end|>"}, "chat_template": [
            {"name": "default", "template": CHATML}, {"name": "rag", "template": "x"}]}),
        "tiny_spm": (tiny(False), {"bos_token": "<s>", "add_eos_token": True}),
    }
    for name, (tok, config) in seeds.items():
        data = tok.to_str().encode()
        if config is not None:
            data += b"\0" + json.dumps(config).encode()
        write_seeds(out, {name + ".json": data})


# ---------------------------------------------------------------------------------------------
# chat_template: byte 0 even + Jinja source, or byte 0 odd (template, add_generation_prompt)
# + NUL-separated messages, each a role byte (0 system, 1 user, 2 assistant, 3 free-form role
# ending at 0x01) and its content.

def chat_template_seeds(out: str) -> None:
    qwen = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\nYou are Qwen, a \\'helpful\\' assistant.<|im_end|>\\n' }}"
            "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>' + '\\n'}}{% endfor %}")
    seeds = {
        "source_chatml": b"\0" + CHATML.encode(),
        "source_chatml_system": b"\0" + qwen.encode(),
        "source_llama3": b"\0" + b"{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>' }}",
        "source_mistral": b"\0" + b"{{ bos_token }}{{ '[INST] ' + m['content'] + ' [/INST]' }}",
        "source_unknown": b"\0" + b"{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }
    conversations = {
        "user": [(1, "Hello!")],
        "system_user": [(0, "Be terse."), (1, "What is 2+2?")],
        "turns": [(1, "Hi"), (2, "Hello, how can I help?"), (1, "  Tell me a joke.\n")],
        "tool_role": [(1, "x"), (3, "tool\x01{\"result\": 1}")],
        "unicode": [(1, "多语言 テスト e\u0301 \u3000😀\u2028")],
    }
    for template in range(4):
        for gen in (0, 1):
            for name, messages in conversations.items():
                mode = 1 | template << 1 | gen << 3
                body = b"\0".join(bytes([role]) + text.encode() for role, text in messages)
                seeds[f"apply_{template}_{gen}_{name}"] = bytes([mode]) + body
    write_seeds(out, seeds)


# ---------------------------------------------------------------------------------------------
# expert_file: byte 0 even + a whole expert file (safetensors, the metadata t2 writes), or
# byte 0 odd + FuzzedDataProvider input that expert_file_fuzz.cc builds a file from.

EXPERT_KEYS = ["format_version", "base_model", "base_fingerprint", "targets", "normalization",
               "task", "metrics", "created_at"]
TARGET_NAMES = ["model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                "model.layers.1.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight",
                "model.layers.0.self_attn.k_proj.weight", "model.layers.2.self_attn.v_proj.weight",
                "model.layers.0.self_attn.o_proj.weight", "lm_head.weight"]


def expert_metadata(targets="mlp", normalization="nuclear"):
    return {"format_version": "1", "base_model": "SmolLM2-135M-Instruct",
            "base_fingerprint": "00112233445566778899aabbccddeeff", "targets": targets,
            "normalization": normalization, "task": "math", "metrics": '{"accuracy": 0.5}',
            "created_at": "2025-01-01T00:00:00Z"}


def fdp_string(text: bytes) -> bytes:
    """FuzzedDataProvider::ConsumeRandomLengthString's encoding of `text`, terminated."""
    return text.replace(b"\\", b"\\\\") + b"\\;"


def fdp_expert(metadata: dict, tensors: list, present: int = 0xFF) -> bytes:
    """Input that expert_file_fuzz.cc's BuildFile turns into the file: strings and element
    bytes from the front, integers (read one byte each, from the end) at the back."""
    front = b"".join(fdp_string(metadata.get(k, "").encode()) for k in EXPERT_KEYS)
    back = [present, len(tensors)]
    for name, kind, values in tensors:
        back.append(TARGET_NAMES.index(name) if name in TARGET_NAMES else len(TARGET_NAMES))
        if name not in TARGET_NAMES:
            front += fdp_string(name.encode())
        back += [kind, len(values)]
        front += np.array(values, dtype=np.float16 if kind == 2 else np.float32).tobytes()
    return b"\1" + front + bytes(reversed(back))


def expert_file_seeds(out: str) -> None:
    def z(n, start=0.5):
        return torch.linspace(start, start + 1, n, dtype=torch.float32)

    mlp = {name: z(3 + i) for i, name in enumerate(TARGET_NAMES[:3])}
    attn = {name: z(2 + i) for i, name in enumerate(TARGET_NAMES[3:7])}
    seeds = {
        "file_mlp": save(mlp, metadata=expert_metadata()),
        "file_attn_none": save({k: v * 0 for k, v in attn.items()},
                               metadata=expert_metadata("attn", "none")),
        "file_all": save({**mlp, **attn}, metadata=expert_metadata("all")),
        "file_bad_dtype": save({TARGET_NAMES[0]: z(4).to(torch.float16)},
                               metadata=expert_metadata()),
    }
    seeds = {name: b"\0" + data for name, data in seeds.items()}
    seeds["built_mlp"] = fdp_expert(expert_metadata(), [
        (TARGET_NAMES[0], 0, [0.5, 1.0, 0.0]), (TARGET_NAMES[1], 1, [2.0, 0.25])])
    seeds["built_all"] = fdp_expert(expert_metadata("all", "none"), [
        (TARGET_NAMES[3], 0, [0.0, 0.0]), (TARGET_NAMES[2], 0, [1.0]),
        ("model.layers.9.mlp.up_proj.weight", 0, [3.0, 4.0])])
    seeds["built_f16_2d"] = fdp_expert(expert_metadata("attn"), [
        (TARGET_NAMES[4], 2, [1.0, 2.0]), (TARGET_NAMES[5], 3, [1.0])])
    seeds["built_missing_key"] = fdp_expert(expert_metadata(), [(TARGET_NAMES[0], 0, [1.0])],
                                            present=0xFF & ~(1 << 6))
    write_seeds(out, seeds)


# ---------------------------------------------------------------------------------------------
# json_columns: byte 0 even + ranks JSON, odd + mixture spec JSON, as the registry writes them.

def json_columns_seeds(out: str) -> None:
    def dump(value):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    seeds = {
        "ranks": b"\0" + dump({name: 64 + i for i, name in enumerate(TARGET_NAMES[:3])}).encode(),
        "ranks_empty": b"\0{}",
        "mixture": b"\1" + dump({"experts": [{"name": "math-svf", "version": 3, "sha256": sha},
                                             {"name": "code", "version": 1, "sha256": sha}],
                                 "alpha": [0.5, -0.125, 1e-300], "per_layer": False}).encode(),
        "mixture_per_layer": b"\1" + dump({"experts": [{"name": "é", "version": 9007199254740993,
                                                       "sha256": ""}],
                                           "alpha": [0.1] * 4, "per_layer": True}).encode(),
        "mixture_empty": b"\1" + dump({"experts": [], "alpha": [], "per_layer": False}).encode(),
    }
    write_seeds(out, seeds)


# ---------------------------------------------------------------------------------------------
# verifier: kind byte (0 exact, 1 numeric, 2 choice, 3 regex, 4 category) + expected NUL answer.

def verifier_seeds(out: str) -> None:
    cases = {
        "exact": (0, "Paris", "  Paris\n"),
        "numeric": (1, "The total is $1,234.50", "so -7 or 1234.5"),
        "numeric_list": (1, "1,2,3", "answer: .5e3 and 3"),
        "choice": (2, "(b)", "I think the answer is (B)."),
        "choice_word": (2, "C.", "Answer: c) because A is wrong"),
        "regex": (3, r"\b(42|forty[- ]two)\b", "It is forty-two."),
        "regex_classes": (3, r"(?i)^\s*[a-j]\)\s*\p{L}+$", "B) Ünïcode"),
        "category": (4, "math", "The category is \\boxed{math}"),
    }
    write_seeds(out, {name: bytes([kind]) + expected.encode() + b"\0" + answer.encode()
                      for name, (kind, expected, answer) in cases.items()})


# ---------------------------------------------------------------------------------------------
# request_validation: byte 0 (0 GenerateRequest, 1 AdaptRequest, 2 ClassifyRequest) + the
# message's wire encoding, written by protoc from text format.

REQUESTS = {
    "generate_expert": (0, 'prompt: "Hello" max_new_tokens: 8 adaptation { expert: "math-svf@2" }'),
    "generate_none": (0, 'chat { messages { role: "user" content: "hi" } } adaptation { none {} }'),
    "generate_mixture": (0, 'prompt: "x" stop: "\\n" adaptation { mixture: "blend.v1" }'),
    "generate_prompt": (0, 'chat { messages { role: "system" content: "s" } messages { role: "user" '
                           'content: "Solve 2+2" } } adaptation { prompt { mode: '
                           'CLASSIFY_MODE_GENERATE } }'),
    "generate_few_shot": (0, 'prompt: "q" adaptation { few_shot_task: "arith" }'),
    "adapt_numeric": (1, 'task: "arith" examples { question: "2+2?" answer: "4" } examples { '
                         'question: "3*3?" answer: "nine, i.e. 9" } verifier: VERIFIER_KIND_NUMERIC '
                         'experts: "math" experts: "code@3" generations: 5 population: 16 '
                         'max_new_tokens: 32 per_layer: true'),
    "adapt_regex": (1, 'task: "t" examples { question: "q" answer: "^\\\\d+$" } '
                       'verifier: VERIFIER_KIND_REGEX'),
    "adapt_choice": (1, 'task: "mc" examples { question: "q" answer: "(c)" } '
                        'verifier: VERIFIER_KIND_CHOICE_LETTER population: 256 generations: 100'),
    "adapt_exact": (1, 'task: "e" examples { question: "q" answer: " Paris " } '
                       'verifier: VERIFIER_KIND_EXACT'),
    "classify_expert": (2, 'prompt: "Write a sort" adaptation { classifier_expert { mode: '
                           'CLASSIFY_MODE_LABEL_SCORE expert: "cls@1" } }'),
    "classify_prompt": (2, 'chat { messages { role: "user" content: "why?" } } adaptation { '
                           'prompt {} }'),
}


def request_validation_seeds(out: str) -> None:
    protoc = shutil.which("protoc")
    if protoc is None:
        raise SystemExit("protoc not found (Debian: protobuf-compiler)")
    names = {0: "GenerateRequest", 1: "AdaptRequest", 2: "ClassifyRequest"}
    seeds = {}
    for name, (kind, text) in REQUESTS.items():
        wire = subprocess.run(
            [protoc, "-I", os.path.join(ROOT, "proto"), f"--encode=t2.v1.{names[kind]}",
             "t2/v1/dispatcher.proto"], input=text.encode(), capture_output=True, check=True).stdout
        seeds[name] = bytes([kind]) + wire
    write_seeds(out, seeds)


SEEDS = {
    "safetensors": safetensors_seeds,
    "gguf": gguf_seeds,
    "tokenizer_json": tokenizer_json_seeds,
    "chat_template": chat_template_seeds,
    "expert_file": expert_file_seeds,
    "json_columns": json_columns_seeds,
    "verifier": verifier_seeds,
    "request_validation": request_validation_seeds,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    for sub, make in SEEDS.items():
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        make(os.path.join(out, sub))
    print(f"wrote fuzz seeds to {out}")


if __name__ == "__main__":
    main()
