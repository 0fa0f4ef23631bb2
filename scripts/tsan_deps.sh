#!/usr/bin/env bash
# Builds ThreadSanitizer-instrumented copies of the Abseil and gRPC shared libraries the
# services link, from Debian's own source packages of exactly the installed versions, and
# prints the folder that holds them.
#
# Why: Debian's gRPC and Abseil are not instrumented, so TSan cannot see the mutexes and
# atomics with which gRPC's threads hand a call to the caller's thread, and it reports
# hundreds of races in gRPC's inline call code (call_op_set.h, byte_buffer.h) for every test
# that makes an RPC. Same version, same build options and same sonames make these libraries
# drop-in replacements: the TSan build compiles against the system headers and its tests
# load these through LD_LIBRARY_PATH (cmake/T2Sanitizers.cmake, T2_TSAN_DEPS_DIR).
#
# Built once into $T2_HOME/tsan-deps/<key>, where the key covers the package versions, the
# compiler and this script; about 45 minutes on 2 cores the first time, nothing after.
# Progress goes to stderr; the folder is the only line on stdout.
set -euo pipefail
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
MIRROR=${T2_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The source packages, pinned by the sha256 of their .dsc (which pins each tarball, and
# dpkg-source checks those). Update both together with the installed -dev packages.
ABSL_SOURCE=abseil_20220623.1-1+deb12u2
ABSL_DSC_SHA256=ba731eaced569332fa4ce802a7ff2615ae57ac25beaf2d02f634ef908f2e62c2
GRPC_SOURCE=grpc_1.51.1-3
GRPC_DSC_SHA256=b402e403c08b74110390391bd384704c8018db88e8ae5277dc8c864e060720a0

log() { echo "[tsan-deps] $*" >&2; }
die() { log "error: $*"; exit 1; }

# The installed binary package must come from the pinned source version: a "+bN" suffix is a
# rebuild of the same source.
installed_source_version() {
  dpkg-query -W -f '${Version}' "$1" 2>/dev/null | sed 's/+b[0-9]*$//'
}
[[ "$(installed_source_version libabsl-dev)" == "${ABSL_SOURCE#abseil_}" ]] ||
  die "libabsl-dev is $(installed_source_version libabsl-dev), this script pins ${ABSL_SOURCE#abseil_}"
[[ "$(installed_source_version libgrpc++-dev)" == "${GRPC_SOURCE#grpc_}" ]] ||
  die "libgrpc++-dev is $(installed_source_version libgrpc++-dev), this script pins ${GRPC_SOURCE#grpc_}"

key=$( { echo "$ABSL_SOURCE $GRPC_SOURCE"; g++ --version | head -1; cat "$0"; } |
  sha256sum | cut -c1-16)
prefix=$T2_HOME/tsan-deps/$key
if [[ -f $prefix/complete ]]; then
  log "reusing $prefix"
  echo "$prefix/lib"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/t2-tsan-deps.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Downloads <source>.dsc, checks it against its pin, fetches the files it lists and unpacks
# the patched tree into ./<dir>.
fetch_source() {
  local source=$1 sha256=$2 pool=$3 dir=$4
  curl -fsS --retry 3 -o "$source.dsc" "$MIRROR/pool/main/$pool/$source.dsc"
  echo "$sha256  $source.dsc" | sha256sum --check --status ||
    die "$source.dsc does not match its pinned sha256"
  local file
  for file in $(sed -n '/^Checksums-Sha256:/,/^[^ ]/{/^ /p}' "$source.dsc" | awk '{print $3}'); do
    curl -fsS --retry 3 -o "$file" "$MIRROR/pool/main/$pool/$file"
  done
  # The signature cannot be checked without debian-keyring; the pinned .dsc stands in for it.
  # dpkg-source still checks every tarball against the .dsc's checksums.
  dpkg-source --require-strong-checksums -x "$source.dsc" "$dir" >/dev/null 2>"$dir.log" ||
    { cat "$dir.log" >&2; die "dpkg-source -x $source.dsc failed"; }
}

log "fetching $ABSL_SOURCE and $GRPC_SOURCE from $MIRROR"
fetch_source "$ABSL_SOURCE" "$ABSL_DSC_SHA256" a/abseil abseil
fetch_source "$GRPC_SOURCE" "$GRPC_DSC_SHA256" g/grpc grpc

# Debian's own options (debian/rules of each package), plus TSan. -g1 keeps line tables for
# report stacks at a fraction of full debug info's size.
tsan_flags=(
  -G Ninja -DCMAKE_BUILD_TYPE=None -DBUILD_SHARED_LIBS=ON
  "-DCMAKE_C_FLAGS=-O2 -g1 -fsanitize=thread"
  "-DCMAKE_CXX_FLAGS=-O2 -g1 -fsanitize=thread"
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
  # No build-tree RPATH: a DT_RPATH would outrank LD_LIBRARY_PATH in the libraries' lookups.
  -DCMAKE_SKIP_BUILD_RPATH=ON
)
mkdir -p "$prefix.partial/lib"

log "building Abseil with -fsanitize=thread"
cmake -S abseil -B abseil-build "${tsan_flags[@]}" -DCMAKE_CXX_STANDARD=17 -DBUILD_TESTING=OFF \
  >abseil-configure.log 2>&1 || { cat abseil-configure.log >&2; die "configuring Abseil failed"; }
ninja -C abseil-build >abseil-build.log 2>&1 ||
  { tail -50 abseil-build.log >&2; die "building Abseil failed"; }
find abseil-build -name 'libabsl_*.so*' -exec cp -a {} "$prefix.partial/lib/" \;

# gRPC compiles against the system Abseil's headers, which are the same version.
log "building gRPC with -fsanitize=thread"
cmake -S grpc -B grpc-build "${tsan_flags[@]}" -DgRPC_BUILD_TESTS=OFF \
  -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package -DgRPC_PROTOBUF_PROVIDER=package \
  -DgRPC_RE2_PROVIDER=package -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
  -DgRPC_BENCHMARK_PROVIDER=none -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF \
  -DgRPC_BUILD_CSHARP_EXT=OFF >grpc-configure.log 2>&1 ||
  { cat grpc-configure.log >&2; die "configuring gRPC failed"; }
# Only what the services link: grpc++ pulls in grpc, gpr, upb and address_sorting.
ninja -C grpc-build grpc++ grpc++_reflection >grpc-build.log 2>&1 ||
  { tail -50 grpc-build.log >&2; die "building gRPC failed"; }
find grpc-build -maxdepth 1 \( -name 'libgrpc*.so*' -o -name 'libgpr.so*' -o -name 'libupb.so*' \
  -o -name 'libaddress_sorting.so*' \) -exec cp -a {} "$prefix.partial/lib/" \;

rm -rf "$prefix"
mv "$prefix.partial" "$prefix"
touch "$prefix/complete"
log "done: $prefix"
echo "$prefix/lib"
