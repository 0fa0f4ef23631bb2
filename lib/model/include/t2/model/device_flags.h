// --device and --dtype, the same in every binary that loads a model (worker, trainer, t2).
#pragma once

#include <string>

#include "t2/common/command_line.h"
#include "t2/model/device_spec.h"

namespace t2::model {

struct DeviceFlags {
  CLI::Option* device = nullptr;
  CLI::Option* dtype = nullptr;
};

// Adds both flags to `app`, bound to `device` and `dtype`, whose values are the defaults.
// `note` ends each flag's help (", as the server loads the model").
DeviceFlags AddDeviceFlags(CLI::App& app, DeviceSpec& device, ComputeDType& dtype,
                           const std::string& note = "");

}  // namespace t2::model
