#!/usr/bin/env python3
"""DESIGN.md's boundary: LibTorch stays in the model, SVF, engine and training code.

Two checks, on what the build really did:
- every translation unit of the torch-free libraries and services compiles without LibTorch's
  headers on its command line (compile_commands.json), so a PUBLIC torch dependency leaking
  through a library's interface fails here;
- the dispatcher and registry binaries load no LibTorch library (ldd).

usage: check_torch_boundary.py --build DIR --source DIR BINARY...
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys

# Source folders (or single files) whose every translation unit must compile without torch.
TORCH_FREE = [
    "lib/common", "lib/names", "lib/formats", "lib/tokenizer", "lib/store", "lib/rpc",
    "lib/registry_client", "lib/metrics", "lib/adapt", "lib/tasks",
    "lib/model/src/config.cc", "lib/svf/src/targets.cc",
    "services/dispatcher", "services/registry", "services/worker", "services/trainer",
]
TORCH_FLAG = re.compile(r"/torch/include\b|-DUSE_C10D")  # its include folder, or its definitions
TORCH_LIBRARY = re.compile(r"\blib(torch|c10)[\w.-]*\.so")
UNITY_SOURCE = re.compile(r"unity_\d+_cxx\.cxx$")  # CMake's batch of sources (T2_UNITY_BUILD)
UNITY_INCLUDE = re.compile(r'^#include "(.+)"$', re.MULTILINE)


def sources(entry):
    """The source files one compile command covers: a unity batch covers those it includes."""
    path = pathlib.Path(entry["directory"], entry["file"]).resolve()
    if UNITY_SOURCE.search(path.name):
        return [pathlib.Path(p).resolve() for p in UNITY_INCLUDE.findall(path.read_text())]
    return [path]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", type=pathlib.Path, required=True)
    parser.add_argument("--source", type=pathlib.Path, required=True)
    parser.add_argument("binaries", nargs="+", type=pathlib.Path)
    args = parser.parse_args()
    source = args.source.resolve()
    problems = []

    commands = json.loads((args.build / "compile_commands.json").read_text())
    checked = 0
    seen = []
    for entry in commands:
        command = entry.get("command") or " ".join(entry["arguments"])
        for path in sources(entry):
            try:
                relative = path.relative_to(source).as_posix()
            except ValueError:
                continue  # generated sources (protobuf) live in the build folder
            seen.append(relative)
            if not any(relative == p or relative.startswith(p + "/") for p in TORCH_FREE):
                continue
            checked += 1
            if TORCH_FLAG.search(command):
                problems.append(f"{relative}: compiled with LibTorch's headers or flags")
    # Every folder must have been seen: a renamed one would otherwise pass unchecked.
    for prefix in TORCH_FREE:
        if not any(r == prefix or r.startswith(prefix + "/") for r in seen):
            problems.append(f"{prefix}: no translation unit in compile_commands.json (renamed?)")

    for binary in args.binaries:
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False, timeout=60)
        if ldd.returncode != 0:
            problems.append(f"{binary}: ldd failed: {ldd.stderr.strip()}")
            continue
        for line in ldd.stdout.splitlines():
            if TORCH_LIBRARY.search(line):
                problems.append(f"{binary.name}: loads {line.split()[0]}")

    for p in problems:
        print("FAIL", p)
    print(f"{checked} translation units and {len(args.binaries)} binaries checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
