// The absolute path differs between checkouts, so it lives in this small file alone: as a
// define on the whole target it kept up_command.cc (13 s to compile) out of ccache's reach in
// every fresh clone.
#include "deploy_dir.h"

namespace t2 {

std::filesystem::path BuiltDeployDir() { return T2_DEPLOY_DIR; }

}  // namespace t2
