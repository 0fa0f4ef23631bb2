#!/usr/bin/env bash
# Gathers, in a build stage, the shared libraries a binary loads, for a final stage whose own
# system cannot provide them: the CUDA base images are Ubuntu, while the binaries and their
# Debian libraries are built on Debian 12, where the project is built and tested.
#   - Libraries from the torch wheel (under --site: torch/lib, nvidia/*/lib) are copied under
#     --out with their absolute paths kept, so that the binary's RUNPATH and the wheel's own
#     $ORIGIN rpaths resolve in the final image as they did at link time, without patching.
#   - Every other library is copied flat into --out-sys (the final stage puts that folder on
#     LD_LIBRARY_PATH), except the C and C++ runtimes: the final image has its own, newer,
#     and mixing two glibc builds in one process does not work.
# torch opens some libraries with dlopen (cuDNN's engines, NVRTC's builtins, the CUDA linear
# algebra part of torch), which ldd cannot see: --dlopen names them (shell globs), and their
# own dependencies are gathered too. A dependency ldd cannot find fails the build, except the
# NVIDIA driver's libraries, which the container runtime mounts at run time.
#
# usage: collect-runtime-libs.sh --site DIR --out DIR --out-sys DIR [--dlopen GLOB]... FILE...
set -euo pipefail

site="" out="" out_sys=""
dlopen=() files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --site) site=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --out-sys) out_sys=$2; shift 2 ;;
    --dlopen) dlopen+=("$2"); shift 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
if [ -z "$site" ] || [ -z "$out" ] || [ -z "$out_sys" ] || [ ${#files[@]} -eq 0 ]; then
  echo "usage: $0 --site DIR --out DIR --out-sys DIR [--dlopen GLOB]... FILE..." >&2
  exit 2
fi
site=$(realpath "$site")
mkdir -p "$out" "$out_sys"

for pattern in "${dlopen[@]}"; do
  # A pattern that matches nothing is an error, so that a wheel that renames a library fails
  # the image build instead of a request in production.
  mapfile -t matches < <(compgen -G "$pattern" || true)
  [ ${#matches[@]} -gt 0 ] || { echo "collect-runtime-libs: nothing matches $pattern" >&2; exit 1; }
  files+=("${matches[@]}")
done

# The C and C++ runtimes, and the NVIDIA driver's libraries (mounted by the container runtime).
runtime='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libutil|libresolv|libgcc_s|libstdc\+\+)\.so'
driver='^(libcuda|libnvidia-[a-z-]+)\.so'

copy() {  # copy SOURCE: places one library as described above
  local path
  path=$(realpath -s "$1")
  case "$path" in
    "$site"/*) cp -L --parents "$path" "$out" ;;
    *) cp -L "$path" "$out_sys/$(basename "$path")" ;;
  esac
}

missing=0
for f in "${files[@]}"; do
  # A dlopen'ed library is itself part of the image.
  case "$(realpath -s "$f")" in "$site"/*) copy "$f" ;; esac
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ "$name" =~ $runtime ]] && continue
    if [ "$path" = "not" ]; then
      [[ "$name" =~ $driver ]] && continue
      echo "collect-runtime-libs: $f needs $name, which is not found" >&2
      missing=1
      continue
    fi
    copy "$path"
  done < <(ldd "$f")
done
exit $missing
