"""Writes an HF checkpoint folder with the default model's architecture and random weights.

The GPU machine cannot download and only a few tens of MiB travel to it, so the kit carries
the default model's config, tokenizer and chat template (exported from the GGUF by
bench/device/make_kit.sh) and this script draws the weights there: same shapes, same
vocabulary, same prompt lengths, so every timing is the real model's; only the answers'
content is noise (they run to max_new_tokens, the same work in every mode compared).

--shape llama3-8b keeps the tokenizer but takes Llama-3-8B's layer shapes (hidden 4096, MLP
14336, 32 query and 8 key-value heads of 128, untied output head; the vocabulary stays the
tokenizer's 49152, not Llama-3's 128256), for the training-step benchmark at that size;
--layers cuts the stack (a step's time grows linearly with it).

  python3 random_model.py --like KIT/model --out DIR [--dtype bfloat16] [--seed 0]
                          [--shape like|llama3-8b] [--layers N]
"""
import argparse
import pathlib
import shutil

import torch
import transformers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--like", required=True, help="folder with config.json and the tokenizer files")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", default="like", choices=["like", "llama3-8b"])
    parser.add_argument("--layers", type=int, help="decoder layers (default: the shape's)")
    args = parser.parse_args()
    like, out = pathlib.Path(args.like), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    config = transformers.AutoConfig.from_pretrained(like)
    if args.shape == "llama3-8b":
        config.update({"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                       "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                       "rope_theta": 500000.0, "tie_word_embeddings": False})
    if args.layers:
        config.num_hidden_layers = args.layers
    torch.manual_seed(args.seed)
    # Drawn on the GPU when there is one: billions of random numbers take minutes on a CPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = transformers.AutoModelForCausalLM.from_config(config).to(getattr(torch, args.dtype))
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (like / name).exists():
            shutil.copy(like / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"[random_model] {config.model_type}, {params / 1e6:.1f}M parameters ({args.dtype}) -> {out}")


if __name__ == "__main__":
    main()
