# All third-party packages, found once. Debian packages for the system libraries; LibTorch
# from the torch wheel that scripts/setup.sh installs (its cmake_prefix_path is passed in).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
# gRPC's config finds Debian's protobuf (FindProtobuf) and Abseil for us.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
# Torch's CUDA config otherwise compiles and runs a probe program to detect the local GPU's
# architecture, which fails with CMake 3.25 + nvcc 13 and means nothing on a GPU-less build
# machine. Hopper (9.0) and Ampere (8.0) cover the GPUs t2 targets; override via the env.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
endif()
find_package(Torch CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG)

# The torch wheel is a CUDA build; its config pulls in the CUDA toolkit when present. Our own
# CUDA sources (none yet in the engine issue) are enabled only when nvcc is found.
include(CheckLanguage)
if(T2_WITH_CUDA)
  check_language(CUDA)
endif()
set(T2_HAVE_CUDA_TOOLKIT ${CMAKE_CUDA_COMPILER})

# Torch's exported flags include -D_GLIBCXX_USE_CXX11_ABI=1, matching Debian's libraries.
# Keep them on an interface target so only model/engine code sees torch headers.
add_library(t2_torch INTERFACE)
target_link_libraries(t2_torch INTERFACE ${TORCH_LIBRARIES})
# The torch wheel brings its own CUDA libraries (site-packages/nvidia/*/lib), newer than the
# system toolkit's; libtorch_cuda was built against those. Search them first when linking
# (its NCCL symbols are missing from the toolkit's copy) and when running.
get_filename_component(T2_TORCH_SITE "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
file(GLOB T2_TORCH_NVIDIA_LIBS LIST_DIRECTORIES true "${T2_TORCH_SITE}/nvidia/*/lib")
foreach(dir ${T2_TORCH_NVIDIA_LIBS})
  target_link_options(t2_torch INTERFACE "LINKER:-rpath-link,${dir}" "LINKER:-rpath,${dir}")
endforeach()
target_compile_options(t2_torch INTERFACE ${TORCH_CXX_FLAGS})
add_library(t2::torch ALIAS t2_torch)

# -Wextra's missing-field-initializers flags every designated initializer that leaves a
# field to its default, which is how option structs are meant to be written here.
set(T2_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
set(T2_FIXTURES_DIR ${PROJECT_BINARY_DIR}/fixtures)

if(NOT T2_PYTHON)
  find_program(T2_PYTHON_FOUND NAMES python3)
  set(T2_PYTHON ${T2_PYTHON_FOUND})
endif()

# An HTTP client for tests that read /metrics and Prometheus's API. Debian's cpp-httplib is a
# compiled library whose class layout depends on the features it was built with: its
# pkg-config file carries the matching defines.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CPP_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
