# t2serve/dispatcher: t2-dispatcher, the front door: the first pass (which expert a request
# needs), the expert's resolution through the registry, the second pass streamed from a
# worker (workers given one by one or as a dns:/// name, re-resolved), Adapt (few-shot CEM).
#
#   docker build -f docker/dispatcher.Dockerfile -t t2serve/dispatcher .  (from the repository root)
#
# Two stages: "build" is Debian 12, where the project is built and tested (scripts/setup.sh's
# packages); the final stage is Debian 12 slim with the runtime packages of the libraries the
# binary links. The dispatcher links no LibTorch (its first pass runs on a worker), so the
# final image has no torch and no CUDA.

FROM debian:12.11 AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The build dependencies of scripts/setup.sh, less its test and cluster tools. GoogleTest is
# here although no test is built: the top-level CMakeLists.txt finds it unconditionally.
# Versions are pinned by the release (bookworm) rather than one by one: Debian's security
# updates replace the exact versions in the archive, so exact pins would stop the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config python3-venv \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev \
      libgtest-dev libgmock-dev libcpp-httplib-dev libpcre2-dev libre2-dev libssl-dev libicu-dev \
      prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
# The top-level CMakeLists.txt finds LibTorch for every target, so configuring needs a torch
# even here. The CPU build of the version scripts/setup.sh pins: a fraction of the CUDA wheel's
# size, and its CMake config does not ask for a CUDA toolkit. Nothing of it reaches the image.
RUN python3 -m venv /opt/t2/venv \
 && /opt/t2/venv/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.15.0+cpu
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY lib lib
COPY services services
# Only the dispatcher: no tests, no benchmarks, no other service.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DT2_BUILD_TESTS=OFF -DT2_BUILD_BENCH=OFF -DT2_SERVICES=dispatcher \
      -DCMAKE_PREFIX_PATH="$(/opt/t2/venv/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
 && cmake --build build --target t2-dispatcher -j "$(nproc)"

FROM debian:12.11-slim
LABEL org.opencontainers.image.title="t2serve dispatcher" \
      org.opencontainers.image.description="t2-dispatcher: the Transformer² two-pass front door"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The runtime halves of the build's -dev packages that t2-dispatcher links (readelf -d):
# gRPC, protobuf, Abseil, spdlog/fmt, prometheus-cpp with cpp-httplib (/metrics). The soname
# in each package's name pins the ABI the binary was built against; see the build stage for
# why not versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/services/dispatcher/t2-dispatcher /usr/local/bin/t2-dispatcher
# Fails the image build, not a pod, when a library is missing.
RUN libs=$(ldd /usr/local/bin/t2-dispatcher) \
 && case "$libs" in *"not found"*) echo "$libs" >&2; exit 1 ;; esac
USER 10001:10001
# gRPC (TLS), Prometheus metrics, then the plaintext health port (--health-listen) that
# Kubernetes' gRPC probes use; no HEALTHCHECK.
EXPOSE 50050 9090 8086
ENTRYPOINT ["/usr/local/bin/t2-dispatcher"]
# The registry and the workers are deployment-specific: Kubernetes gives every argument.
CMD ["--help"]
