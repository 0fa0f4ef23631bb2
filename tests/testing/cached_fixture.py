"""Runs a reference-data script once per inputs and reuses its output afterwards.

    cached_fixture.py --out DIR -- SCRIPT [ARGS...]

The reference scripts (HF transformers logits and continuations, tokenizer fixtures, SVF
golden data, ...) are deterministic functions of their own code, their arguments, the
installed Python packages and the default model. Their output is kept under
$T2_HOME/fixture-cache/<script>-<key>, the key being a hash of exactly those inputs, and
copied to DIR; only a changed input runs the script again. T2_FIXTURE_CACHE=0 always runs it
(and refreshes the cache).

A copy, not a link: a test that writes beside its fixtures must not change the cache.
"""
import argparse
import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# Entries kept per script: the current key and a few before it (switching branches).
KEEP_PER_SCRIPT = 3


def t2_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("T2_HOME", pathlib.Path.home() / ".cache/t2serve"))


def cache_key(script: pathlib.Path, args: list[str]) -> str:
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("wrapper", pathlib.Path(__file__).read_bytes())
    # The script and the Python files beside it (helpers it may import).
    for path in sorted(script.parent.glob("*.py")):
        add(f"source:{path.name}", path.read_bytes())
    add("args", "\0".join(args).encode())
    add("python", sys.version.encode())
    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    add("packages", "\n".join(packages).encode())
    # The models setup.sh placed (GGUF files). Not everything in that folder: t2 writes its SVD
    # caches (*.svd.safetensors) beside the model, so keying on those made the first test run
    # change every key after it, and a bare machine computed all reference data twice.
    models = t2_home() / "models"
    if models.is_dir():
        for path in sorted(models.glob("*.gguf")):
            if path.is_file():
                add(f"model:{path.name}", str(path.stat().st_size).encode())
    return h.hexdigest()[:20]


def prune(cache: pathlib.Path, stem: str, keep: pathlib.Path) -> None:
    entries = sorted(cache.glob(f"{stem}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in entries if p != keep][KEEP_PER_SCRIPT - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not command:
        parser.error("missing the script to run after --")
    script = pathlib.Path(command[0]).resolve()
    args = command[1:]
    if "--out" in args:
        parser.error("the script's --out is this wrapper's; do not pass it twice")

    cache = t2_home() / "fixture-cache"
    cache.mkdir(parents=True, exist_ok=True)
    # The folder name says which script and which directory the output is for.
    stem = f"{script.parent.name}-{script.stem}"
    entry = cache / f"{stem}-{cache_key(script, args)}"
    use_cache = os.environ.get("T2_FIXTURE_CACHE", "1") != "0"

    if use_cache and (entry / ".complete").is_file():
        print(f"[fixture] reusing {entry}")
    else:
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=cache))
        try:
            run = subprocess.run([sys.executable, str(script), "--out", str(staging / "data"), *args])
            if run.returncode != 0:
                return run.returncode
            (staging / "data" / ".complete").write_text("")
            # Made whole, then renamed into place: a concurrent or killed run never leaves a
            # half-written entry that looks complete.
            shutil.rmtree(entry, ignore_errors=True)
            try:
                (staging / "data").rename(entry)
            except OSError:
                if not (entry / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"[fixture] cached {entry}")
    os.utime(entry)  # the newest used entries are the ones prune keeps
    prune(cache, stem, entry)

    shutil.rmtree(opts.out, ignore_errors=True)
    shutil.copytree(entry, opts.out, ignore=shutil.ignore_patterns(".complete"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
