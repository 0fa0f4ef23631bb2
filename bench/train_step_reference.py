"""The SVF training step of train_step_bench, written the way a PyTorch user writes it (the
reference implementation's way): W' composed from the SVD with autograd, copied into the HF
model for the rollouts (transformers' batched greedy generate), the REINFORCE loss through
transformers' forward with W' substituted (torch.func.functional_call) in micro-batches, then
clip_grad_norm_ and torch.optim.Adam. Same model, batch (the prompt ids train_step_bench
wrote), lengths and micro-batches; prints the same table.

Usage: python train_step_reference.py --model GGUF|HF_FOLDER --batch BATCH.json --repeats N
                                     [--device cpu|cuda] [--dtype float32|bfloat16|float16]
"""
import argparse
import json
import pathlib
import time

import torch
import transformers
from torch.func import functional_call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, type=pathlib.Path)
    parser.add_argument("--batch", required=True, type=pathlib.Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    batch = json.loads(args.batch.read_text())
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    # A .gguf file (the default model) or an HF checkpoint folder (the GPU kit's random one).
    where = dict(pretrained_model_name_or_path=args.model) if args.model.is_dir() else \
        dict(pretrained_model_name_or_path=args.model.parent, gguf_file=args.model.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(**where, dtype=dtype).to(device)
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(**where)

    def now():  # a GPU runs kernels after the call returns: wait for them before reading the clock
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()
    eos = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    params = dict(model.named_parameters())
    for v in params.values():
        v.requires_grad_(False)
    names = [n for n in params if any(f"mlp.{m}_proj.weight" in n for m in ("gate", "up", "down"))]
    base = {n: params[n].detach().clone() for n in names}
    svd = {n: torch.linalg.svd(base[n].float(), full_matrices=False) for n in names}  # the cache: not timed
    gen = torch.Generator().manual_seed(0)
    p = {n: (0.1 + 0.01 * torch.randn(svd[n][1].shape[0], generator=gen)).to(device).requires_grad_() for n in names}
    optimizer = torch.optim.Adam(list(p.values()), lr=2e-3)
    prompts = batch["prompts"]
    max_new, micro = batch["max_new_tokens"], batch["micro_batch"]

    def composed():
        out = {}
        for n in names:
            u, s, vh = svd[n]
            z = torch.sigmoid(p[n])
            out[n] = ((u * (s * z * (s.sum() / (s * z).sum()))) @ vh).to(dtype)
        return out

    print(f"{'step':6} {'rollout':>9} {'compose':>9} {'forward':>9} {'backward':>9} {'update':>9} {'total':>9} {'tokens':>8}")
    steps = []
    for r in range(args.repeats):
        start = now()
        # Rollouts: the expert's W' in the model, greedy, left-padded batch.
        with torch.no_grad():
            for n, w in composed().items():
                params[n].copy_(w)
            width = max(len(x) for x in prompts)
            ids = torch.full((len(prompts), width), pad, dtype=torch.long)
            mask = torch.zeros((len(prompts), width), dtype=torch.long)
            for i, x in enumerate(prompts):
                ids[i, width - len(x):] = torch.tensor(x)
                mask[i, width - len(x):] = 1
            out = model.generate(ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=pad)
            completions = []
            for row in out[:, width:].tolist():
                cut = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
                completions.append(row[:cut])
            for n in names:
                params[n].copy_(base[n])
        rollout = now() - start
        rewards = [1.0 if i % 2 == 0 else -1.0 for i in range(len(prompts))]

        t = now()
        ws = composed()
        leaves = {n: w.detach().requires_grad_() for n, w in ws.items()}
        compose = now() - t
        forward = backward = 0.0
        tokens = 0
        for first in range(0, len(prompts), micro):
            t = now()
            rows = list(range(first, min(first + micro, len(prompts))))
            seqs = [prompts[i] + completions[i] for i in rows]
            width = max(len(s) for s in seqs)
            tokens += sum(len(s) for s in seqs)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, s in enumerate(seqs):
                ids[j, :len(s)] = torch.tensor(s)
                mask[j, :len(s)] = 1
            logits = functional_call(model, {**params, **leaves}, (ids.to(device),),
                                     {"attention_mask": mask.to(device)}).logits.float()
            loss = 0
            for j, i in enumerate(rows):
                start_pos = len(prompts[i])
                logp = torch.log_softmax(logits[j, start_pos - 1:start_pos - 1 + len(completions[i])], -1)
                token_logp = logp[torch.arange(len(completions[i])), torch.tensor(completions[i], device=device)]
                loss = loss - token_logp.sum() * rewards[i]
            loss = loss / len(prompts)
            forward += now() - t
            t = now()
            loss.backward()
            backward += now() - t
        t = now()
        torch.autograd.backward([ws[n] for n in names], [leaves[n].grad for n in names])
        backward += now() - t
        t = now()
        torch.nn.utils.clip_grad_norm_(list(p.values()), 1e-3)
        optimizer.step()
        optimizer.zero_grad()
        update = now() - t
        total = now() - start
        print(f"{r + 1:<6} {rollout:8.2f}s {compose:8.2f}s {forward:8.2f}s {backward:8.2f}s {update:8.2f}s "
              f"{total:8.2f}s {tokens:8d}", flush=True)
        steps.append({"rollout_s": rollout, "compose_s": compose, "forward_s": forward, "backward_s": backward,
                      "update_s": update, "total_s": total, "tokens": tokens,
                      "generated_tokens": sum(len(c) for c in completions)})
    if args.out:
        args.out.write_text(json.dumps({"steps": steps}))


if __name__ == "__main__":
    main()
