#include "t2/model/device_flags.h"

namespace t2::model {

DeviceFlags AddDeviceFlags(CLI::App& app, DeviceSpec& device, ComputeDType& dtype,
                           const std::string& note) {
  DeviceFlags flags;
  flags.device = AddParsedOption(
                     app, "--device", device, DeviceSpec::Parse,
                     [](const DeviceSpec& d) { return d.ToString(); },
                     "auto | cpu | cuda | cuda:N (auto: CUDA when a device is visible)" + note)
                     ->type_name("DEVICE");
  flags.dtype = AddEnumOption(app, "--dtype", dtype, kComputeDTypes, ComputeDTypeName,
                              "compute dtype (auto: float32 on CPU, bfloat16 on CUDA; half "
                              "precision needs CUDA)" +
                                  note)
                    ->type_name("DTYPE");
  return flags;
}

}  // namespace t2::model
