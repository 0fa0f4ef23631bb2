#!/usr/bin/env bash
# Packs t2serve's GPU checks for a GPU machine that has CUDA, Python and torch but no network,
# no gRPC and no copy of the default model — the `device` machines lent to some sessions
# (their image: torch 2.11.0+cu130, Python 3.12; /work/.library/device/KINDS.md). Only a few
# tens of MiB travel there, so everything is built here and packed into one tarball:
#   1. LibTorch of the device's torch version ($T2_DEVICE_TORCH, default 2.11.0), downloaded
#      once into $T2_HOME: the binaries link against it and load the device's own copy;
#   2. a Release build in build-device/ for Hopper (TORCH_CUDA_ARCH_LIST, default 9.0);
#   3. build-device/kit.tar.xz: the stripped services, t2, the benchmarks and the GPU test
#      binaries; the shared libraries they need beyond glibc, the C++ runtime, torch and CUDA
#      (gRPC, protobuf, Abseil, ICU, ...); the default model's config, tokenizer and chat
#      template (bench/device/random_model.py draws its weights there); the test fixtures.
# Then, on the GPU machine: bench/device/run_kit.sh (bench/README.md, "GPU").
#   bench/device/make_kit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
PY=$T2_HOME/venv/bin/python
TORCH_VERSION=${T2_DEVICE_TORCH:-2.11.0}
TORCH_SITE=$T2_HOME/device-torch-$TORCH_VERSION
BUILD=${T2_DEVICE_BUILD_DIR:-build-device}
say() { printf '\033[1m[kit]\033[0m %s\n' "$*"; }
[ -x "$PY" ] || { echo "[kit] $PY missing: run scripts/setup.sh first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. LibTorch ------------------------------------------------------------------------------
if [ ! -f "$TORCH_SITE/torch/share/cmake/Torch/TorchConfig.cmake" ]; then
  say "downloading torch $TORCH_VERSION (its LibTorch, for linking) into $TORCH_SITE"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 "torch==$TORCH_VERSION" -d "$tmp"
  mkdir -p "$TORCH_SITE"
  unzip -q -o "$tmp"/torch-*.whl 'torch/include/*' 'torch/lib/*' 'torch/share/*' -d "$TORCH_SITE"
  rm -f "$tmp"/torch-*.whl
  # The wheel bundles an old protobuf's headers (for caffe2); ahead of the system's on the
  # include path they break our generated code, which none of torch's headers we use need.
  rm -rf "$TORCH_SITE/torch/include/google"
fi
# libtorch_cuda's CUDA libraries, for the linker only: the venv's torch brings the same CUDA
# major version (same sonames); on the device the image's own copies are loaded.
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$site/nvidia" "$TORCH_SITE/nvidia"

# 2. Build ---------------------------------------------------------------------------------
say "building into $BUILD against torch $TORCH_VERSION"
# torch 2.11's libtorch.so exports its own copy of std::filesystem, which crashes when called
# from our code (remove_all jumps to address 0); naming libstdc++ first among the programs'
# needed libraries makes the dynamic linker take the C++ runtime's definitions.
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_SITE/torch/share/cmake" -DT2_PYTHON="$PY" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state" > "$tmp/configure.log" 2>&1 \
  || { cat "$tmp/configure.log"; exit 1; }
binaries=(services/registry/t2-registry services/worker/t2-worker services/dispatcher/t2-dispatcher services/t2/t2
          bench/stack_bench bench/generate_bench bench/train_step_bench tests/svf/svf_compose_test
          tests/svf/svf_decomposition_test)
targets=()
for b in "${binaries[@]}"; do targets+=("$(basename "$b")"); done
cmake --build "$BUILD" -j "${T2_JOBS:-$(nproc)}" --target "${targets[@]}"

# 3. Kit -----------------------------------------------------------------------------------
kit=$tmp/kit
mkdir -p "$kit/lib" "$kit/model" "$kit/fixtures/model"
for b in "${binaries[@]}"; do
  mkdir -p "$kit/$(dirname "$b")"
  strip --strip-unneeded -o "$kit/$b" "$BUILD/$b"
done
# What the binaries load besides glibc, the C++ runtime, torch and CUDA (all on the device).
for b in "${binaries[@]}"; do ldd "$BUILD/$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -v -E "^$TORCH_SITE/|/nvidia/|/cuda|/(libc|libm|libdl|libpthread|librt|libutil|libresolv|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.so" |
  while read -r lib; do cp -L "$lib" "$kit/lib/"; done
missing=$(for b in "${binaries[@]}"; do ldd "$BUILD/$b"; done | grep "not found" | sort -u || true)
[ -z "$missing" ] || { echo "[kit] unresolved libraries:"$'\n'"$missing" >&2; exit 1; }
"$PY" - "$T2_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$kit/model" <<'PYEOF'
import pathlib, sys, transformers
gguf = pathlib.Path(sys.argv[1])
for part in (transformers.AutoConfig, transformers.AutoTokenizer):
    part.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(sys.argv[2])
PYEOF
# Fixtures of the GPU tests, made as ctest makes them.
"$PY" tests/model/make_reference.py --out "$kit/fixtures/model" --only tiny > /dev/null 2>&1
"$PY" tests/svf/make_golden.py --out "$kit/fixtures/svf/golden" > /dev/null
tar -C "$kit" -cJf "$BUILD/kit.tar.xz" .
say "$BUILD/kit.tar.xz: $(du -h "$BUILD/kit.tar.xz" | cut -f1) packed, $(du -sh "$kit" | cut -f1) unpacked"
