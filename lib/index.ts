export { loadNative, native, nativeInfo, NativeLoadError, type Backend, type NativeInfo } from "./native.js";
export * from "./quant/spec.js";
export { sampleCalibration, type CalibrationOptions, type CalibrationRecord, type CalibrationSource } from "./quant/calibration.js";
export { quantizeModel, kvTypeFor, type QuantizeOptions, type QuantizeReport } from "./quant/quantize.js";
export { saveQuantizedModel, loadQuantizedModel, loadQuantizedCheckpoint, CheckpointError as QuantizedCheckpointError } from "./quant/checkpoint.js";
