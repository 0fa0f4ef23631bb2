#!/usr/bin/env python3
"""Reference data for t2's tokenizer tests, computed with HF tokenizers / transformers.

Writes into --out:
  strings.json                 the test strings (deterministic, seeded)
  <name>/tokenizer.json, <name>/tokenizer_config.json, <name>/model.gguf
                               tokenizers this script trains itself
  <name>.ref.json              reference ids and decodes for every string (and, where the
                               tokenizer has a Unicode normalizer, HF's normalized text)
  chat.json                    chat templates, conversations and HF's renders
  summary.json                 counts worth reporting (the smollm digit-split finding)

Every reference comes from the Python libraries (tokenizers 0.23, transformers 5.24,
sentencepiece, gguf, jinja2); the C++ test only compares.
"""

import argparse
import json
import os
import random
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local

import gguf
import sentencepiece as spm
from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)
from tokenizers import AddedToken
from transformers import AutoTokenizer

SEED = 20240607

GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------------------------
# Test strings

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could people "
         "my than first water been call who oil its now find long down day did get come made may "
         "part tokenizer server stream decode encode Llama SmolLM Qwen GPU tensor").split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'LL", "'D", "'ſ"]
PUNCT = list(".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"'") + ["...", "--", "->", "=>", "::", "!=", "//"]
SPACES = [" ", "  ", "   ", "    ", "\t", "\n", "\r\n", "\n\n", " \n ", "\t\t", " \t", "\u00a0",
          "\u3000", "\u2003", "\u0085", "\u2028", "\u200b", "\r", "\x0b", "\x0c"]
SCRIPTS = ["你好，世界", "中文分词测试", "こんにちは世界", "カタカナ", "안녕하세요", "한국어 텍스트",
           "Привет, мир!", "Съешь же ещё этих мягких французских булок", "Γειά σου Κόσμε",
           "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
           "Zażółć gęślą jaźń", "Ærøskøbing", "naïve café résumé", "Straße", "İstanbul", "ǅemal",
           "ﬁne ﬂow", "ᚠᛇᚻ", "ትግርኛ", "ქართული", "Հայերեն", "தமிழ்", "ಕನ್ನಡ", "ગુજરાતી",
           "e\u0301", "n\u0303o", "Z\u0351\u0352a\u0353l\u0354g\u0355o", "𝕳𝖊𝖑𝖑𝖔", "𐍈𐌰", "𝄞 music",
           "\ue000\uf8ff", "\ufeffBOM", "½ ¾ ⅓ ² ³ ⁴", "Ⅻ ⅻ", "٣٤٥", "१२३", "๑๒๓", "①②③"]
EMOJI = ["😀", "😂🤣", "👍", "👍🏽", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🇺🇸", "🇫🇷🇩🇪", "❤️", "✨", "🔥🔥🔥",
         "1️⃣", "🧑🏿‍🚀", "🐍", "🦀", "☕", "⌚", "♻️", "🫶"[:0] + "🤖"]
CODE = [
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <vector>\nint main() { return 0; }",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "<div class=\"x\">Hello</div>",
    "SELECT * FROM users WHERE id = 42;",
    "x = lambda a, b: a ** b  # comment",
    "if err != nil {\n\t\treturn err\n\t}",
    "    indented line\n        more indented",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "$ ls -la | grep '.py' && echo done",
    "a_b_c = snake_case + camelCase + PascalCase",
]
# Text that NFC, NFD, NFKC or NFKD rewrite (decomposed accents, Hangul jamo, singletons,
# combining marks out of canonical order, compatibility characters only NFK* touch).
UNNORMALIZED = [
    "e\u0301", "A\u030a", "\u1100\u1161", "\u1100\u1161\u11a8",
    "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "Cafe\u0301 cre\u0300me bru\u0302le\u0301e", "A\u030angstro\u0308m", "\u212b \u2126 \u212a",
    "q\u0307\u0323", "o\u0308\u0301", "\u1e9b\u0323", "\u0344", "\u0958\u0959", "\ufb2c",
    "\U0001d15e\U0001d15f", "caf\u00e9 vs cafe\u0301", "가각한국어", "Ångström", "ﬁ ﬂ ﬀ", "①②",
    "²³", "ｶﾞｷﾞ", "㌀㍻", "™ … ½", "ǅ ǆ", "\u00a0\u2002\u3000", "Ｆｕｌｌ", "\u03d3\u03d4",
    "I\u0307stanbul", "\u0041\u0308\u0304", "ḱṷṓn", "n\u0303o\u0308",
]
# Normalization next to added tokens (HF matches those in the raw text first and normalizes
# only the text between them) and the normalized added token of the *_nfc tokenizers.
NORMALIZER_EDGES = [
    "e<|im_end|>\u0301", "<|im_start|>e\u0301<|im_end|>", "A\u030a<|endoftext|>\u030a",
    "<\u1100\u1161\u11a8>", "<각>", "x<\u1100\u1161\u11a8>y <각> z",
    "\u1100<|im_end|>\u1161", "<|im_start|>user\nCafe\u0301 ①<|im_end|>\n",
]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<s>", "</s>", "<unk>", "<think>",
            "</think>", "[MASK]", "<tool>", "<|im_", "|>", "<0x41>", "<0xFF>", "<|", "<repo_name>"]


def number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randrange(10))
    if kind == 1:
        return str(rng.randrange(10 ** rng.randrange(2, 25)))
    if kind == 2:
        return f"{rng.uniform(-1000, 1000):.{rng.randrange(1, 8)}f}"
    if kind == 3:
        return f"{rng.randrange(10**9):,}"
    if kind == 4:
        return f"0x{rng.randrange(1 << 32):X}"
    return "-" + str(rng.randrange(10 ** 6))


def random_word(rng):
    word = rng.choice(WORDS)
    style = rng.randrange(5)
    if style == 0:
        word = word.capitalize()
    elif style == 1:
        word = word.upper()
    return word


def random_piece(rng):
    kind = rng.choices(["word", "contraction", "number", "punct", "space", "script", "emoji",
                        "code", "special"], [30, 4, 8, 8, 10, 8, 6, 2, 4])[0]
    if kind == "word":
        return random_word(rng)
    if kind == "contraction":
        return rng.choice(CONTRACTIONS)
    if kind == "number":
        return number(rng)
    if kind == "punct":
        return rng.choice(PUNCT)
    if kind == "space":
        return rng.choice(SPACES)
    if kind == "script":
        return rng.choice(SCRIPTS)
    if kind == "emoji":
        return rng.choice(EMOJI)
    if kind == "code":
        return rng.choice(CODE)
    return rng.choice(SPECIALS)


def test_strings():
    fixed = [
        "", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \n", "\n ", "a", "Hello world",
        "Hello, world!", "I'm here", "don't", "DON'T", "they'll've", "'s", "'ſ", "x'S",
        "123", "1234567890", "3.14159", "1,000,000", "-42", "0x1F", "2024-06-07", "12:30pm",
        "a    b", "a \t\n b", "abc   ", "   abc", "  leading and trailing  ", "x\r\ny", "\t\tz",
        "word\n\n\nword", "tab\tseparated\tvalues", "trailing newline\n", "mixed \u00a0nbsp",
        "NEL\u0085here", "line\u2028sep", "zero\u200bwidth", "\ufeff", "\x00", "a\x00b",
        "\x01\x02\x1f\x7f", "\ufffd", "\\xff\\xfe", "<0xFF>", "<s>", "</s>", "<unk>",
        "<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|>", "x<|im_end|>y", "<|im_start|><|im_end|>",
        "<|im_start", "<|im_end|", "<|endoftext|><|endoftext|>", " <|im_end|> ", "<|im_start|>\n",
        "<think>reasoning</think> answer", "[MASK] is [MASK]", " [MASK]  spaced ", "foo foobar foo",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇫🇷", "e\u0301", "𝄞", "你好", "Привет",
        "ÿ", "Ġ", "Ċ", "ĠĠ", "▁", "▁▁hello", "_under_score_", "ＦＵＬＬＷＩＤＴＨ",
        "a" * 300, " " * 100, "\n" * 50, "9" * 100, "ab" * 150, "😀" * 40,
        "The quick brown fox jumps over the lazy dog.",
    ] + CODE + SCRIPTS + EMOJI
    rng = random.Random(SEED)
    generated = []
    while len(fixed) + len(generated) < 420:
        n = rng.randrange(1, 30)
        sep = rng.choice(["", " ", " ", " ", "\n"])
        generated.append(sep.join(random_piece(rng) for _ in range(n)))
    # Appended after the first 420 so those stay as they were: text the Unicode normalizers
    # change, alone and mixed with the rest.
    rng = random.Random(SEED + 2)
    mixed = []
    for _ in range(30):
        pieces = [random_piece(rng) for _ in range(rng.randrange(1, 12))]
        for _ in range(rng.randrange(1, 4)):
            pieces.insert(rng.randrange(len(pieces) + 1), rng.choice(UNNORMALIZED))
        mixed.append(rng.choice(["", " ", "\n"]).join(pieces))
    return fixed + generated + UNNORMALIZED + NORMALIZER_EDGES + mixed


def training_corpus(rng, lines=6000):
    out = []
    for _ in range(lines):
        n = rng.randrange(3, 40)
        out.append(" ".join(random_piece(rng) for _ in range(n)))
    return out


# ---------------------------------------------------------------------------------------------
# References

def references(encode, decode, strings):
    """ids for every string, and the decodes of those ids (plain and skipping specials)."""
    ids = [encode(s) for s in strings]
    return {
        "ids": ids,
        "decoded": [decode(i, False) for i in ids],
        "decoded_skip": [decode(i, True) for i in ids],
    }


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)


def smollm_gguf(out, strings, model_path, summary):
    directory, name = os.path.split(model_path)
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    unmodified = [tok(s, add_special_tokens=False).input_ids for s in strings]
    # transformers has no split regex for tokenizer.ggml.pre == "smollm" and falls back to
    # GPT-2's byte-level regex. SmolLM2 was trained (its own tokenizer.json; llama.cpp's
    # "smollm" pre-tokenizer agrees) with digits split one by one before that regex, which is
    # what t2 implements, so the reference gets that pre-tokenizer set explicitly.
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    ref = references(lambda s: tok(s, add_special_tokens=False).input_ids,
                     lambda i, skip: tok.decode(i, skip_special_tokens=skip), strings)
    ref["ids_add_special"] = [tok(s, add_special_tokens=True).input_ids for s in strings[:40]]
    ref["model"] = model_path
    ref["bos"], ref["eos"] = tok.bos_token_id, tok.eos_token_id
    differ = sum(1 for a, b in zip(unmodified, ref["ids"]) if a != b)
    summary["smollm_strings"] = len(strings)
    summary["smollm_differ_from_unmodified_transformers"] = differ
    summary["smollm_differ_examples"] = [s for s, a, b in zip(strings, unmodified, ref["ids"])
                                         if a != b][:10]
    write_json(os.path.join(out, "smollm_gguf.ref.json"), ref)
    return tok


def train_byte_level(corpus, split, specials, added=(), ignore_merges=False, bos=None,
                     normalizer=None):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    if split is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    if added:
        tok.add_tokens(list(added))
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def save_hf_json(out, name, tok, config, strings, unicode_normalizer=False):
    directory = os.path.join(out, name)
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    write_json(os.path.join(directory, "tokenizer_config.json"), config)
    ref = references(lambda s: tok.encode(s, add_special_tokens=False).ids,
                     lambda i, skip: tok.decode(i, skip_special_tokens=skip), strings)
    ref["ids_add_special"] = [tok.encode(s, add_special_tokens=True).ids for s in strings[:40]]
    if unicode_normalizer:  # decode(encode(s)) is this, not s
        ref["normalized"] = [tok.normalizer.normalize_str(s) for s in strings]
    write_json(os.path.join(out, f"{name}.ref.json"), ref)


def byte_level_jsons(out, strings, corpus):
    gpt2 = train_byte_level(corpus, None, ["<|endoftext|>"])
    save_hf_json(out, "bl_gpt2", gpt2, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"},
                 strings)
    llama3 = train_byte_level(corpus, LLAMA3_SPLIT,
                              ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                               "<|end_header_id|>", "<|eot_id|>"],
                              ignore_merges=True, bos="<|begin_of_text|>")
    save_hf_json(out, "bl_llama3", llama3,
                 {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, strings)
    qwen2 = train_byte_level(corpus, QWEN2_SPLIT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    qwen2_config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    save_hf_json(out, "bl_qwen2", qwen2, qwen2_config, strings)
    # Real Qwen2 tokenizers NFC-normalize. The same one trained that way, plus a normalized
    # added token written decomposed (HF matches its normalized form); then that vocabulary with
    # each other normal form, the last as a Sequence.
    qwen2_nfc = train_byte_level(corpus, QWEN2_SPLIT,
                                 ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                 added=[AddedToken("<\u1100\u1161\u11a8>", normalized=True)],
                                 normalizer=normalizers.NFC())
    save_hf_json(out, "bl_qwen2_nfc", qwen2_nfc, qwen2_config, strings, unicode_normalizer=True)
    for name, normalizer in (
            ("bl_qwen2_nfd", normalizers.NFD()), ("bl_qwen2_nfkc", normalizers.NFKC()),
            ("bl_qwen2_nfkd", normalizers.Sequence([normalizers.NFC(), normalizers.NFKD()]))):
        variant = Tokenizer.from_str(qwen2_nfc.to_str())
        variant.normalizer = normalizer
        save_hf_json(out, name, variant, qwen2_config, strings, unicode_normalizer=True)
    added = [
        AddedToken("<think>", special=False, normalized=True),
        AddedToken("</think>", special=False, normalized=False),
        AddedToken("[MASK]", special=True, lstrip=True, rstrip=True, normalized=False),
        AddedToken("foo", special=False, single_word=True, normalized=False),
        AddedToken("<tool>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False),
    ]
    extra = train_byte_level(corpus, None, ["<|endoftext|>", "<|im_start|>"], added=added)
    save_hf_json(out, "bl_added", extra, {"eos_token": "<|im_end|>"}, strings)
    return llama3


def byte_level_ggufs(out, strings, summary):
    """The trained byte-level vocabularies written into GGUF files the way llama.cpp's
    converter does (tokens, merges, token types, tokenizer.ggml.pre), and transformers'
    tokenizer loaded from each GGUF as the reference."""
    for name, pre in (("bl_gpt2", "gpt2"), ("bl_llama3", "llama-bpe"), ("bl_qwen2", "qwen2")):
        with open(os.path.join(out, name, "tokenizer.json"), encoding="utf-8") as f:
            spec = json.load(f)
        vocab = spec["model"]["vocab"]
        tokens = [None] * len(vocab)
        for token, index in vocab.items():
            tokens[index] = token
        special = {t["id"] for t in spec["added_tokens"] if t["special"]}
        merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
        directory = os.path.join(out, name + "_gguf")
        os.makedirs(directory, exist_ok=True)
        w = gguf.GGUFWriter(os.path.join(directory, "model.gguf"), "llama")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
        w.add_token_merges(merges)
        w.add_bos_token_id(min(special))
        w.add_eos_token_id(max(special))
        # Without an unknown-token id transformers' GPT2Tokenizer falls back to adding
        # "<|endoftext|>" as a new special token, which these vocabularies do not have.
        w.add_unk_token_id(min(special))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        backend = AutoTokenizer.from_pretrained(directory, gguf_file="model.gguf").backend_tokenizer
        # transformers' GPT2Tokenizer registers its default "<|endoftext|>" before the GGUF's
        # own specials, appending it as a new token to a vocabulary that lacks it; that token
        # is no part of the model, so the reference drops it.
        state = json.loads(backend.to_str())
        state["added_tokens"] = [t for t in state["added_tokens"] if t["id"] < len(tokens)]
        if pre == "llama-bpe":
            # Llama-3's own tokenizer takes a word that is a whole token as that token
            # (tiktoken's rule; its tokenizer.json says ignore_merges, as does llama.cpp);
            # transformers' GGUF builder leaves that out, t2 keeps it.
            state["model"]["ignore_merges"] = True
        tok = Tokenizer.from_str(json.dumps(state))
        ref = references(lambda s: tok.encode(s, add_special_tokens=False).ids,
                         lambda i, skip: tok.decode(i, skip_special_tokens=skip), strings)
        ref["ids_add_special"] = [tok.encode(s, add_special_tokens=True).ids for s in strings[:40]]
        with open(os.path.join(out, f"{name}.ref.json"), encoding="utf-8") as f:
            json_ids = json.load(f)["ids"]
        summary[f"{name}_gguf_differ_from_tokenizer_json"] = sum(
            1 for a, b in zip(ref["ids"], json_ids) if a != b)
        write_json(os.path.join(out, f"{name}_gguf.ref.json"), ref)


def train_sentencepiece(out, corpus):
    work = os.path.join(out, "spm_work")
    os.makedirs(work, exist_ok=True)
    corpus_path = os.path.join(work, "corpus.txt")
    with open(corpus_path, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus))
    spm.SentencePieceTrainer.train(
        input=corpus_path, model_prefix=os.path.join(work, "sp"), model_type="bpe", vocab_size=2000,
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity", add_dummy_prefix=True,
        character_coverage=0.995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=["<think>"], minloglevel=2)
    model_dir = os.path.join(work, "model")
    os.makedirs(model_dir, exist_ok=True)
    shutil.copy(os.path.join(work, "sp.model"), os.path.join(model_dir, "tokenizer.model"))
    return os.path.join(work, "sp.model"), model_dir


def spm_references(out, strings, sp_model, model_dir):
    from transformers import LlamaTokenizer

    # tokenizer.json as transformers converts the SentencePiece model.
    tok = LlamaTokenizer.from_pretrained(model_dir)
    directory = os.path.join(out, "spm_json")
    tok.save_pretrained(directory)
    tok = AutoTokenizer.from_pretrained(directory)
    ref = references(lambda s: tok(s, add_special_tokens=False).input_ids,
                     lambda i, skip: tok.decode(i, skip_special_tokens=skip), strings)
    ref["ids_add_special"] = [tok(s, add_special_tokens=True).input_ids for s in strings[:40]]
    write_json(os.path.join(out, "spm_json.ref.json"), ref)

    # The Llama-2 hub form: a Prepend + Replace normalizer instead of Metaspace.
    with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as f:
        legacy = json.load(f)
    legacy["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    legacy["pre_tokenizer"] = None
    legacy_tok = Tokenizer.from_str(json.dumps(legacy))
    save_hf_json(out, "spm_legacy", legacy_tok, {"bos_token": "<s>", "eos_token": "</s>",
                                                 "unk_token": "<unk>"}, strings)

    # The same model in a GGUF, as llama.cpp's converter writes SentencePiece vocabularies,
    # and transformers' tokenizer built from that GGUF as the reference.
    proc = spm.SentencePieceProcessor(model_file=sp_model)
    tokens, scores, types = [], [], []
    for i in range(proc.get_piece_size()):
        tokens.append(proc.id_to_piece(i))
        scores.append(proc.get_score(i))
        if proc.is_unknown(i):
            types.append(2)
        elif proc.is_control(i):
            types.append(3)
        elif proc.is_byte(i):
            types.append(6)
        elif proc.is_unused(i):
            types.append(5)
        elif tokens[-1] == "<think>":
            types.append(4)
        else:
            types.append(1)
    gguf_dir = os.path.join(out, "spm_gguf")
    os.makedirs(gguf_dir, exist_ok=True)
    path = os.path.join(gguf_dir, "model.gguf")
    write_spm_gguf(path, tokens, scores, types, add_space_prefix=True)
    gtok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file="model.gguf")
    ref = references(lambda s: gtok(s, add_special_tokens=False).input_ids,
                     lambda i, skip: gtok.decode(i, skip_special_tokens=skip), strings)
    ref["ids_add_special"] = [gtok(s, add_special_tokens=True).input_ids for s in strings[:40]]
    ref["sentencepiece_ids"] = [proc.encode(s) for s in strings]
    write_json(os.path.join(out, "spm_gguf.ref.json"), ref)


def write_spm_gguf(path, tokens, scores, types, add_space_prefix):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(add_space_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bad_ggufs(out):
    """GGUF files whose tokenizer metadata is missing or wrong in one way each."""
    directory = os.path.join(out, "bad_gguf")
    os.makedirs(directory, exist_ok=True)
    tokens = ["a", "b", "ab", "<|end|>"]

    def write(name, fill):
        w = gguf.GGUFWriter(os.path.join(directory, name + ".gguf"), "llama")
        fill(w)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    def base(w, merges=True, types=True):
        w.add_tokenizer_model("gpt2")
        w.add_token_list(tokens)
        if merges:
            w.add_token_merges(["a b"])
        if types:
            w.add_token_types([1, 1, 1, 3])

    write("no_model", lambda w: w.add_token_list(tokens))
    write("no_tokens", lambda w: w.add_tokenizer_model("gpt2"))
    write("no_merges", lambda w: base(w, merges=False))
    write("short_types", lambda w: (base(w, types=False), w.add_token_types([1, 1])))
    write("bos_out_of_range", lambda w: (base(w), w.add_bos_token_id(99)))
    write("unknown_model", lambda w: (w.add_tokenizer_model("rwkv"), w.add_token_list(tokens)))
    write("unknown_pre", lambda w: (base(w), w.add_tokenizer_pre("no-such-pre")))
    write("bad_merge", lambda w: (w.add_tokenizer_model("gpt2"), w.add_token_list(tokens),
                                  w.add_token_merges(["a c"])))
    write("spm_no_scores", lambda w: (w.add_tokenizer_model("llama"), w.add_token_list(tokens)))
    write("ok", lambda w: (base(w), w.add_eos_token_id(3)))


# ---------------------------------------------------------------------------------------------
# Chat templates, written here in the usual form of each family.

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CHATML_DEFAULT_SYSTEM = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
MISTRAL = (
    "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}"
    "{% if loop.first and system %}{{ '[INST] ' + system + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}")

CONVERSATIONS = [
    [],
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
    [{"role": "system", "content": "You speak French."}, {"role": "user", "content": "Bonjour"},
     {"role": "assistant", "content": "Bonjour ! Ça va ?"}, {"role": "user", "content": "Oui 😀"}],
    [{"role": "user", "content": "  padded content \n\n"}],
    [{"role": "user", "content": ""}],
    [{"role": "user", "content": "Special <|im_end|> and <|eot_id|> and [INST] inside </s>"}],
    [{"role": "user", "content": "多语言 テスト\n\tcode:\n```py\nprint(1)\n```"}],
    [{"role": "assistant", "content": "I start."}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "system", "content": "only system"}],
]


def chat_fixtures(out, smollm_tok, llama3_tok):
    from transformers import PreTrainedTokenizerBase  # noqa: F401  (apply_chat_template lives here)

    cases = []
    spm_tok = AutoTokenizer.from_pretrained(os.path.join(out, "spm_json"))
    templates = [
        ("smollm2_gguf", smollm_tok, smollm_tok.chat_template),
        ("chatml", smollm_tok, CHATML),
        ("chatml_default_system", smollm_tok, CHATML_DEFAULT_SYSTEM),
        ("llama3", AutoTokenizer.from_pretrained(os.path.join(out, "bl_llama3")), LLAMA3),
        ("mistral", spm_tok, MISTRAL),
    ]
    for name, tok, source in templates:
        for messages in CONVERSATIONS:
            for gen in (False, True):
                case = {"template": name, "source": source, "messages": messages,
                        "add_generation_prompt": gen}
                try:
                    case["rendered"] = tok.apply_chat_template(
                        messages, chat_template=source, tokenize=False, add_generation_prompt=gen)
                except Exception as e:  # the template raises for conversations it rejects
                    case["error"] = str(e)
                cases.append(case)
    write_json(os.path.join(out, "chat.json"), cases)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    home = os.environ.get("T2_HOME", os.path.expanduser("~/.cache/t2serve"))
    model_path = os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model_path):
        sys.exit(f"default model missing: {model_path} (run scripts/setup.sh)")

    strings = test_strings()
    write_json(os.path.join(out, "strings.json"), strings)
    summary = {}
    smollm_tok = smollm_gguf(out, strings, model_path, summary)
    corpus = training_corpus(random.Random(SEED + 1))
    llama3 = byte_level_jsons(out, strings, corpus)
    byte_level_ggufs(out, strings, summary)
    sp_model, model_dir = train_sentencepiece(out, corpus)
    spm_references(out, strings, sp_model, model_dir)
    chat_fixtures(out, smollm_tok, llama3)
    bad_ggufs(out)
    write_json(os.path.join(out, "summary.json"), summary)
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
