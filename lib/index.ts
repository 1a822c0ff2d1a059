export { loadNative, native, nativeInfo, NativeLoadError, type Backend, type NativeInfo } from "./native.js";
<<<<<<< HEAD
<<<<<<< HEAD
export { LlamaModel, createNativeModel, ModelError, type ModelOptions, type SyntheticOptions } from "./model/model.js";
export { readConfig, parseConfig, expectedTensors, ConfigError, type ModelConfig } from "./model/config.js";
export { openSafetensors, writeSafetensors, SafetensorsFile, SafetensorsError, type TensorInfo } from "./model/safetensors.js";
export { Tokenizer, TokenizerError } from "./model/tokenizer.js";
export { loadCheckpoint, checkpointFiles, CheckpointError } from "./model/checkpoint.js";
export { downloadModel, HubError } from "./model/hub.js";
export { PRESETS, resolvePreset } from "./model/synthetic.js";
export type * from "./model/native-types.js";
=======
export * from "./kernels.js";
>>>>>>> kernels-gemm
=======
export * as ops from "./ops.js";
>>>>>>> kernels-ops
