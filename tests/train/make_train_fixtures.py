"""Fixtures for the trainer's tests, made at test time (nothing is committed).

Writes, under --out:
  tiny_chat/   a random Llama-family chat model that transformers saves itself: config.json,
               model.safetensors, and a byte-level BPE tokenizer trained here (tokenizer.json,
               tokenizer_config.json with a ChatML chat template), so the engine can load it,
               chat with it and train experts on it in seconds;
  gradient_<targets>_<kl>.json
               the SVF REINFORCE loss (SVF.md §2) and its gradient with respect to the
               parameters p of every target matrix, for fixed rollouts and rewards, computed by
               PyTorch autograd through transformers' own forward pass with W' substituted
               (torch.func.functional_call); then one optimiser step exactly as the reference
               takes it (clip_grad_norm_ 1e-3, then torch.optim.Adam lr 2e-3).
"""
import argparse
import json
import pathlib

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch.func import functional_call

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus():
    rng = np.random.default_rng(0)
    words = ("the a is of and to in what how many does have has apples print answer number letter "
             "code python output sum total day week Anna Ben Carl Sam Maria Tom cat dog tree x y n").split()
    lines = []
    for _ in range(3000):
        n = int(rng.integers(3, 12))
        parts = [words[int(rng.integers(len(words)))] if rng.random() < 0.8 else str(int(rng.integers(0, 1000)))
                 for _ in range(n)]
        lines.append(" ".join(parts) + rng.choice([".", "?", "!", ":", "\n"]))
    return lines


def tiny_chat_model(out: pathlib.Path) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML}))
    torch.manual_seed(0)
    # A large initialisation makes the random model's next-token choices clear-cut, so that
    # greedy answers do not flip on the tiny changes an early expert makes.
    config = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=96,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, initializer_range=0.3, tie_word_embeddings=False,
                                      eos_token_id=tok.token_to_id("<|im_end|>"), bos_token_id=None)
    model = transformers.LlamaForCausalLM(config).float()
    model.save_pretrained(out, safe_serialization=True)


def target_names(config, targets):
    names = []
    for i in range(config.num_hidden_layers):
        if targets in ("attn", "all"):
            names += [f"model.layers.{i}.self_attn.{p}_proj.weight" for p in "qkvo"]
        if targets in ("mlp", "all"):
            names += [f"model.layers.{i}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    return names


def gradient_reference(model_dir: pathlib.Path, out: pathlib.Path, targets: str, kl_coef: float) -> None:
    model = transformers.LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                          attn_implementation="eager")
    model.eval()
    params = dict(model.named_parameters())
    rng = np.random.default_rng(1)
    names = target_names(model.config, targets)
    svd, p = {}, {}
    for name in names:
        w = params[name].detach()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        svd[name] = (u, s, vh)
        p[name] = torch.tensor(0.1 + 0.01 * rng.standard_normal(s.shape[0]), dtype=torch.float32, requires_grad=True)
    vocab = model.config.vocab_size
    rollouts = []
    for b, (prompt_len, completion_len, reward) in enumerate([(5, 4, 1.0), (9, 2, -1.0), (3, 6, -1.0)]):
        rollouts.append({"prompt": rng.integers(3, vocab, prompt_len).tolist(),
                         "completion": rng.integers(3, vocab, completion_len).tolist(), "reward": reward})
    if kl_coef > 0:
        # Two prompts of one micro-batch that begin alike (as a chat template's system prompt
        # makes them): the engine computes such a beginning once for the batch.
        shared = rng.integers(3, vocab, 5).tolist()
        rollouts[0]["prompt"] = shared + rng.integers(3, vocab, 2).tolist()
        rollouts[2]["prompt"] = shared + rng.integers(3, vocab, 1).tolist()
        rollouts[2]["completion"] = rng.integers(3, vocab, 5).tolist()
        rollouts[1]["completion"] = rng.integers(3, vocab, 4).tolist()  # the longest: alone

    def composed():
        weights = {}
        for name in names:
            u, s, vh = svd[name]
            z = torch.sigmoid(p[name])
            c = s.sum() / (s * z).sum()  # nuclear-norm normalisation: Σσ / Σσz
            weights[name] = (u * (s * z * c)) @ vh
        return weights

    weights = composed()
    total = 0
    for r in rollouts:
        ids = torch.tensor([r["prompt"] + r["completion"]])
        start = len(r["prompt"])
        logits = functional_call(model, {**params, **weights}, (ids,)).logits[0, start - 1:-1]
        logp = torch.log_softmax(logits, -1)
        token_logp = logp[torch.arange(len(r["completion"])), torch.tensor(r["completion"])]
        loss = -token_logp.sum() * r["reward"]
        if kl_coef > 0:
            with torch.no_grad():
                base_logp = torch.log_softmax(model(ids).logits[0, start - 1:-1], -1)
            loss = loss + kl_coef * (logp.exp() * (logp - base_logp)).sum()
        total = total + loss
    total = total / len(rollouts)
    total.backward()
    grads = {n: p[n].grad.clone() for n in names}
    before = {n: p[n].detach().clone() for n in names}
    norm = torch.nn.utils.clip_grad_norm_([p[n] for n in names], 1e-3)
    torch.optim.Adam([p[n] for n in names], lr=2e-3).step()
    (out / f"gradient_{targets}_{kl_coef:g}.json").write_text(json.dumps({
        "targets": targets, "kl_coef": kl_coef, "rollouts": rollouts, "loss": total.item(),
        "grad_norm": float(norm),
        "p": {n: before[n].tolist() for n in names},
        "grad": {n: grads[n].tolist() for n in names},
        "p_after": {n: p[n].detach().tolist() for n in names}}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=pathlib.Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    tiny_chat_model(out / "tiny_chat")
    for targets in ("mlp", "all"):
        for kl_coef in (0.0, 0.2):
            gradient_reference(out / "tiny_chat", out, targets, kl_coef)
    print(f"wrote trainer fixtures to {out}")


if __name__ == "__main__":
    main()
