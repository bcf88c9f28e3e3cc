"""What a TFLite Micro tree must hold: shared by the build (which checks a tree) and by
`mcudeploy setup tflm` (which makes one)."""

# Files a create_tflm_tree.py export must hold; the NPU build also needs the driver. CMSIS-NN is
# optional: an export without it carries TFLM's reference kernels (see tflm_kernels).
TFLM_REQUIRED = (
    "tensorflow/lite/micro/micro_interpreter.h",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h",
    "tensorflow/lite/schema/schema_generated.h",
    "third_party/flatbuffers/include/flatbuffers/flatbuffers.h",
)
TFLM_CMSIS_NN_MARKER = "third_party/cmsis_nn/Include/arm_nnfunctions.h"
# An NPU model needs the real Ethos-U kernel (a CO_PROCESSOR=ethos_u export; without it TFLM's stub
# kernels/ethosu.cc registers nothing) and the core driver's sources, private headers included
# (create_tflm_tree.py exports only its include/: copy src/ by hand).
TFLM_NPU_REQUIRED = (
    "tensorflow/lite/micro/kernels/ethos_u/ethosu.cc",
    "third_party/ethos_u_core_driver/include/ethosu_driver.h",
    "third_party/ethos_u_core_driver/src/ethosu_driver.c",
    "third_party/ethos_u_core_driver/src/ethosu_device.h",
)
