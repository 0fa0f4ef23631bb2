# t2serve/worker: t2-worker, which owns the model, its SVD factors and its KV memory and
# serves t2.v1.Worker over gRPC, on a GPU (--device cuda) or on CPU (--device cpu).
#
#   docker build -f docker/worker.Dockerfile -t t2serve/worker .      (from the repository root)
#
# Stages: "cuda" only lends its toolkit to "build" (see there); "build" is Debian 12, where the
# project is built and tested (scripts/setup.sh's packages and the same torch wheel); the final
# stage is NVIDIA's CUDA base image with the binary and the shared libraries it loads.

FROM nvidia/cuda:13.0.2-devel-ubuntu24.04 AS cuda

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
# The torch wheel's CMake config insists on a CUDA toolkit (nvcc, headers) even for code that
# compiles no CUDA; NVIDIA ships none for Debian's archive, so it comes from NVIDIA's image,
# the version the development machines build with (13.0); NVIDIA's toolkit binaries are the
# same for every distribution it supports, Debian 12 among them. At /usr/local/cuda, where
# torch's CUDA detection looks as well as on PATH. Only this stage sees it.
COPY --from=cuda /usr/local/cuda-13.0 /usr/local/cuda
ENV PATH=/usr/local/cuda/bin:$PATH
# The pinned torch of scripts/setup.sh (LibTorch and its CUDA libraries come with the wheel).
# Its path is kept in the final image: the binary's RUNPATH points into it.
RUN python3 -m venv /opt/t2/venv \
 && /opt/t2/venv/bin/pip install --no-cache-dir torch==2.15.0
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY lib lib
COPY services services
COPY docker/collect-runtime-libs.sh docker/
# Only the worker: no tests, no benchmarks, no other service.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DT2_BUILD_TESTS=OFF -DT2_BUILD_BENCH=OFF -DT2_SERVICES=worker \
      -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DCMAKE_PREFIX_PATH="$(/opt/t2/venv/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" \
 && cmake --build build --target t2-worker -j "$(nproc)"
# The libraries the final image needs and cannot get from Ubuntu's archive (how they are
# placed: collect-runtime-libs.sh). torch opens these with dlopen: its CUDA linear algebra
# (the SVD of the target matrices on a GPU), NVRTC for its runtime-compiled kernels, cuDNN's
# engines (attention).
RUN site=$(/opt/t2/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && docker/collect-runtime-libs.sh --site "$site" --out /out/torch --out-sys /out/lib \
      --dlopen "$site/torch/lib/libtorch_cuda_linalg.so" \
      --dlopen "$site/torch/lib/libcaffe2_nvrtc.so" \
      --dlopen "$site/nvidia/cudnn/lib/libcudnn*.so.*" \
      --dlopen "$site/nvidia/*/lib/libnvrtc-builtins.so.*" \
      build/services/worker/t2-worker \
 && install -D -m 0755 build/services/worker/t2-worker /out/bin/t2-worker

# The "base" flavour of NVIDIA's image: the CUDA runtime and the hooks through which the
# container runtime mounts the driver. Not "runtime": its math libraries would be a second,
# unused copy of the ones torch's wheel brings (cuBLAS, cuFFT, NCCL... several GB).
FROM nvidia/cuda:13.0.2-base-ubuntu24.04
LABEL org.opencontainers.image.title="t2serve worker" \
      org.opencontainers.image.description="t2-worker: Transformer² model server (LibTorch, CUDA 13)"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /out/torch/opt/t2/venv /opt/t2/venv
COPY --from=build /out/lib /opt/t2/lib
COPY --from=build /out/bin/t2-worker /usr/local/bin/t2-worker
# /opt/t2/lib holds Debian 12's gRPC, protobuf, Abseil... that the binary was linked with (it
# has no CUDA library, so the wheel's are still found through the RUNPATH); NVIDIA's own
# entries stay on the path (the driver's libraries on older container runtimes).
ENV LD_LIBRARY_PATH=/opt/t2/lib:/usr/local/nvidia/lib:/usr/local/nvidia/lib64 \
    T2_HOME=/var/cache/t2serve
# Fails the image build, not a pod, when a library is missing. T2_HOME (fetched experts, SVD
# cache) is writable by the service's user; Kubernetes mounts a volume there.
RUN libs=$(ldd /usr/local/bin/t2-worker) \
 && case "$libs" in *"not found"*) echo "$libs" >&2; exit 1 ;; esac \
 && mkdir -p /var/cache/t2serve && chown 10001:10001 /var/cache/t2serve
USER 10001:10001
# gRPC (TLS), Prometheus metrics, then the plaintext health port (--health-listen) that
# Kubernetes' gRPC probes use; no HEALTHCHECK.
EXPOSE 50053 9090 8086
ENTRYPOINT ["/usr/local/bin/t2-worker"]
# TLS material and the auth file are mounted at /etc/t2 (k8s/: from Secrets).
CMD ["--model", "/models/SmolLM2-135M-Instruct.Q4_1.gguf", "--listen", "0.0.0.0:50053", "--metrics-listen", "0.0.0.0:9090", "--tls-cert", "/etc/t2/tls/tls.crt", "--tls-key", "/etc/t2/tls/tls.key", "--tls-ca", "/etc/t2/tls/ca.crt", "--auth-file", "/etc/t2/auth/auth", "--health-listen", "0.0.0.0:8086"]
