# Sourced by the build scripts: sets CCACHE_LAUNCHER to the CMake arguments that compile
# through ccache (setup.sh installs it), or to nothing without it or with T2_CCACHE=0.
# Objects are kept in $T2_HOME/ccache, outside the checkout, so a fresh clone elsewhere reuses
# them: paths under the checkout are hashed relative to it (base_dir) and the working directory
# is left out of the hash (hash_dir=false). The settings are part of the launcher command that
# CMake stores in the build folder, so `cmake --build` by hand uses the same cache.
# Expects T2_HOME set and the checkout as the current directory.
CCACHE_LAUNCHER=()
if [ "${T2_CCACHE:-1}" != 0 ] && command -v ccache >/dev/null; then
  launcher="env;CCACHE_DIR=${CCACHE_DIR:-$T2_HOME/ccache};CCACHE_BASEDIR=$PWD;CCACHE_NOHASHDIR=1"
  launcher+=";CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-20G};ccache"
  CCACHE_LAUNCHER=("-DCMAKE_C_COMPILER_LAUNCHER=$launcher" "-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher"
                   "-DCMAKE_CUDA_COMPILER_LAUNCHER=$launcher")
fi
