"""Reference outputs from HF transformers for the model parity tests.

Writes, under --out:
  gguf/     logits of the default SmolLM2 GGUF as transformers loads it (dequantised to
            float32), for fixed token-id prompts, and greedy 64-token continuations of chat
            prompts; ids come from transformers' own tokenizer so the C++ side is tested on
            the model alone.
  tiny/<n>/ small random Llama / Mistral / Qwen2 checkpoints saved by transformers itself
            (safetensors, one sharded), with logits for random ids.
Arrays are raw little-endian files (float32 / int64) described by manifest.json.
"""
import argparse
import json
import os
import pathlib

import numpy as np
import torch
import transformers

torch.manual_seed(0)
torch.set_num_threads(max(1, os.cpu_count() or 1))

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "1, 2, 3, 5, 8, 13,",
    "Once upon a time, in a small village by the sea,",
    "Translate to French: I like green apples.",
    "日本の首都は",
    "The derivative of x^2 + 3x is",
    "<|im_start|>user\nWhat is 7 times 8?<|im_end|>\n<|im_start|>assistant\n",
    "   leading spaces and\ttabs\n\nnewlines",
    "Emoji test 🚀🔥 and accents: café, naïve, Ångström.",
]

CHATS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "What is 12 + 30?",
    "Give me three tips for learning Python.",
    "Explain what a neural network is in one sentence.",
    "List the planets of the solar system.",
    "Who wrote Romeo and Juliet?",
    "Translate 'good morning' into Spanish.",
    "What is the boiling point of water in Celsius?",
]


def save(path: pathlib.Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(array).tofile(path)


def gguf_reference(model_path: pathlib.Path, out: pathlib.Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_path.parent, gguf_file=model_path.name, dtype=torch.float32)
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(model_path.parent, gguf_file=model_path.name)
    manifest = {"logits": [], "greedy": []}
    with torch.no_grad():
        for i, text in enumerate(PROMPTS):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
            save(out / f"logits_{i}.f32", logits)
            manifest["logits"].append({"ids": ids, "file": f"logits_{i}.f32", "shape": list(logits.shape)})
        for i, question in enumerate(CHATS):
            text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=64, do_sample=False, pad_token_id=tok.eos_token_id)
            new = gen[0, len(ids):].tolist()
            manifest["greedy"].append({"question": question, "prompt_ids": ids, "output_ids": new,
                                       "text": tok.decode(new),
                                       "text_without_special": tok.decode(new, skip_special_tokens=True)})
    manifest["eos_token_id"] = tok.eos_token_id
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def tiny_configs():
    common = dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-5)
    yield "llama", transformers.LlamaConfig(**common, tie_word_embeddings=False), None
    yield "llama_tied", transformers.LlamaConfig(**common, tie_word_embeddings=True), None
    yield "llama3_scaled", transformers.LlamaConfig(
        **common, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32}), None
    yield "mistral", transformers.MistralConfig(**common, sliding_window=None), None
    yield "qwen2", transformers.Qwen2Config(**common, tie_word_embeddings=True), None
    yield "llama_sharded", transformers.LlamaConfig(**common), "100KB"


def tiny_reference(out: pathlib.Path) -> None:
    manifest = []
    rng = np.random.default_rng(0)
    for name, config, shard in tiny_configs():
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        with torch.no_grad():  # random init is small; widen it so logits are not all ~0
            for p in model.parameters():
                p.normal_(0.0, 0.2)
        model.eval()
        folder = out / name
        kwargs = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(folder, **kwargs)
        cases = []
        for j, length in enumerate([1, 7, 40]):
            ids = rng.integers(0, config.vocab_size, size=length).tolist()
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float().numpy()
            save(folder / f"ref_logits_{j}.f32", logits)
            cases.append({"ids": ids, "file": f"ref_logits_{j}.f32", "shape": list(logits.shape)})
        manifest.append({"name": name, "dir": name, "cases": cases})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--model", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("T2_HOME", pathlib.Path.home() / ".cache/t2serve"))
                        / "models/SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--only", choices=["gguf", "tiny"])
    args = parser.parse_args()
    if args.only in (None, "tiny"):
        tiny_reference(args.out / "tiny")
    if args.only in (None, "gguf"):
        gguf_reference(args.model, args.out / "gguf")


if __name__ == "__main__":
    main()
