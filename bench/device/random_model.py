"""Writes an HF checkpoint folder with the default model's architecture and random weights.

The GPU machine cannot download and only a few tens of MiB travel to it, so the kit carries
the default model's config, tokenizer and chat template (exported from the GGUF by
bench/device/make_kit.sh) and this script draws the weights there: same shapes, same
vocabulary, same prompt lengths, so every timing is the real model's; only the answers'
content is noise (they run to max_new_tokens, the same work in every mode compared).

  python3 random_model.py --like KIT/model --out DIR [--dtype bfloat16] [--seed 0]
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
    args = parser.parse_args()
    like, out = pathlib.Path(args.like), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    config = transformers.AutoConfig.from_pretrained(like)
    torch.manual_seed(args.seed)
    model = transformers.AutoModelForCausalLM.from_config(config).to(getattr(torch, args.dtype))
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (like / name).exists():
            shutil.copy(like / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"[random_model] {config.model_type}, {params / 1e6:.1f}M parameters ({args.dtype}) -> {out}")


if __name__ == "__main__":
    main()
