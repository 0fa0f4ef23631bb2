#!/usr/bin/env python3
"""Is the default model above chance on any letter-answer question format?

Writes simpler variants of the built-in `reasoning` task's questions (two options instead of
three or four, a single comparison, one syllogism form) as plain question/answer JSONL and
asks `t2 eval` for the base model's accuracy on each, with the built-in task's prompt and
answer length. bench/README.md ("Trainer") cites the table this prints.

    bench/reasoning_formats.py [T2_BINARY] [PER_FORMAT]
"""
import json
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

T2 = sys.argv[1] if len(sys.argv) > 1 else "build/services/t2/t2"
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 120
PROMPT = "{question}\nAnswer with the letter of the correct option."  # lib/tasks/src/builtin.cc
NAMES = ["Anna", "Ben", "Carl", "Dina", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jade", "Kofi", "Lola", "Milo", "Nora"]
rng = random.Random(7)


def render(stem, options, correct):
    order = list(range(len(options)))
    rng.shuffle(order)
    text, answer = stem, None
    for i, j in enumerate(order):
        text += f"\n{'ABCD'[i]}) {options[j]}"
        if j == correct:
            answer = "ABCD"[i]
    return text, answer


def two_names():
    a, b = rng.sample(NAMES, 2)
    taller = rng.random() < 0.5
    return render(f"{a} is taller than {b}. Who is {'taller' if taller else 'shorter'}?", [a, b], 0 if taller else 1)


def two_numbers():
    x, y = rng.sample(range(10, 99), 2)
    larger = rng.random() < 0.5
    pick = max(x, y) if larger else min(x, y)
    return render(f"Which number is {'larger' if larger else 'smaller'}?", [str(x), str(y)], [x, y].index(pick))


def yes_no():
    a, b = rng.sample(NAMES, 2)
    yes = rng.random() < 0.5
    first, second = (a, b) if yes else (b, a)
    return render(f"{a} is taller than {b}. Is {first} taller than {second}?", ["Yes", "No"], 0 if yes else 1)


def four_numbers():
    values = rng.sample(range(10, 999), 4)
    largest = rng.random() < 0.5
    pick = max(values) if largest else min(values)
    return render(f"Which number is the {'largest' if largest else 'smallest'}?", [str(v) for v in values],
                  values.index(pick))


def syllogism():
    form = rng.randrange(3)
    n = rng.choice(NAMES)
    q = ["All", "No", "Some"][form]
    return render(f"{q} birds can swim. {n} is a bird. Can {n} swim?", ["Yes", "No", "It cannot be known"], form)


def chain():
    people = rng.sample(NAMES, 3)
    tallest = rng.random() < 0.5
    facts = [f"{people[0]} is taller than {people[1]}.", f"{people[1]} is taller than {people[2]}."]
    rng.shuffle(facts)
    return render(" ".join(facts) + f" Who is {'the tallest' if tallest else 'the shortest'}?", people,
                  0 if tallest else 2)


FORMATS = [("2 names, one comparison", 2, two_names), ("2 numbers", 2, two_numbers), ("yes / no", 2, yes_no),
           ("4 numbers", 4, four_numbers), ("syllogism (3 options)", 3, syllogism), ("3-name chain", 3, chain)]

print(f"| format | options | chance | n | base accuracy [95%] |\n|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    for name, options, make in FORMATS:
        path = Path(tmp) / f"{make.__name__}.jsonl"
        with path.open("w") as f:
            for i in range(COUNT):
                question, answer = make()
                f.write(json.dumps({"id": f"{make.__name__}-{i}", "question": question, "answer": answer}) + "\n")
        # Nearly everything is the test split (the validation split must not be empty).
        out = subprocess.run([T2, "eval", "--data", str(path), "--verifier", "choice", "--prompt-template", PROMPT,
                              "--max-new-tokens", "48", "--validation-fraction", "0.05", "--test-fraction", "0.9"],
                             capture_output=True, text=True, check=True).stdout
        m = re.search(r"n = (\d+)\): accuracy ([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", out)
        print(f"| {name} | {options} | {1 / options:.2f} | {m[1]} | {float(m[2]):.3f} [{float(m[3]):.3f}, {float(m[4]):.3f}] |")
