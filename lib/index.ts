export { loadNative, native, nativeInfo, NativeLoadError, type Backend, type NativeInfo } from "./native.js";
export { LlamaModel, createNativeModel, ModelError, type ModelOptions, type SyntheticOptions } from "./model/model.js";
export { readConfig, parseConfig, expectedTensors, ConfigError, type ModelConfig } from "./model/config.js";
export { openSafetensors, writeSafetensors, SafetensorsFile, SafetensorsError, type TensorInfo } from "./model/safetensors.js";
export { Tokenizer, TokenizerError } from "./model/tokenizer.js";
export { loadCheckpoint, checkpointFiles, CheckpointError } from "./model/checkpoint.js";
export { downloadModel, HubError } from "./model/hub.js";
export { PRESETS, resolvePreset } from "./model/synthetic.js";
export type * from "./model/native-types.js";
export * from "./kernels.js";
export * as ops from "./ops.js";
// quant/spec's DenseDType ("fp32" | "fp16" | "bf16") would collide with the runtime's ("f32" | …): renamed here.
export {
  GPTQ_DEFAULTS, AWQ_DEFAULTS, SQ_DEFAULT_ALPHA, SpecError, parseSpec, formatSpec, canonicalSpec, isQuantized,
  activationExecution, goldenSettingToSpec, isUnsupportedGolden,
  type WeightBits, type ActBits, type KVBits, type DenseDType as SpecDenseDType, type WeightQuant, type WeightMethod,
  type QuantSpec, type UnsupportedGolden,
} from "./quant/spec.js";
export { sampleCalibration, type CalibrationOptions, type CalibrationRecord, type CalibrationSource } from "./quant/calibration.js";
export { quantizeModel, kvTypeFor, type QuantizeOptions, type QuantizeReport } from "./quant/quantize.js";
export { saveQuantizedModel, loadQuantizedModel, loadQuantizedCheckpoint, CheckpointError as QuantizedCheckpointError } from "./quant/checkpoint.js";
export * from "./eval/index.js";
