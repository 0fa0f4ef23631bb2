"""Engine throughput side by side with transformers' generate, same machine, same run.

    bench/compare_transformers.py [--build build] [--decode-tokens 64] [--threads N]

Both sides run float32 on CPU with the same thread count, the same token ids, greedy decoding
that ignores EOS, and the same arithmetic: prefill tok/s = 512 / time(generate 1 token);
decode tok/s = batch × (N − 1) / (time(N tokens) − time(1 token)), best of repeated runs.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = pathlib.Path(os.environ.get("T2_HOME", pathlib.Path.home() / ".cache/t2serve")) / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = "The quick brown fox jumps over the lazy dog while the river runs to the sea. " * 110


def hf_rows(threads: int, decode_tokens: int):
    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL.parent, gguf_file=MODEL.name, dtype=torch.float32)
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(MODEL.parent, gguf_file=MODEL.name)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]

    def timed(prompt, batch, new):
        x = torch.tensor([prompt] * batch)
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=tok.eos_token_id)
        return time.perf_counter() - start

    timed(ids[:16], 1, 4)
    prefill = min(timed(ids[:512], 1, 1) for _ in range(3))
    yield {"impl": "transformers", "kind": "prefill", "tokens": 512, "seconds": prefill, "tok_per_s": 512 / prefill}
    for batch in (1, 8, 32):
        one = min(timed(ids[:16], batch, 1) for _ in range(2))
        full = min(timed(ids[:16], batch, decode_tokens) for _ in range(2))
        yield {"impl": "transformers", "kind": "decode", "batch": batch, "tokens": decode_tokens,
               "seconds": full - one, "tok_per_s": batch * (decode_tokens - 1) / (full - one)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    binary = pathlib.Path(args.build) / "bench" / "generate_bench"
    out = subprocess.run([str(binary), "default", str(args.decode_tokens), str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    t2 = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    hf = list(hf_rows(args.threads, args.decode_tokens))

    def key(r):
        return (r["kind"], r.get("batch", 1))

    hf_by = {key(r): r for r in hf}
    print(f"SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to float32), CPU, {args.threads} threads, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"| {'measurement':<28} | {'t2 tok/s':>9} | {'transformers tok/s':>18} | {'ratio':>6} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 20}|{'-' * 8}|")
    for r in t2:
        h = hf_by[key(r)]
        label = "prefill 512-token prompt" if r["kind"] == "prefill" else f"decode batch {r['batch']}"
        print(f"| {label:<28} | {r['tok_per_s']:>9.1f} | {h['tok_per_s']:>18.1f} | {r['tok_per_s'] / h['tok_per_s']:>5.2f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
