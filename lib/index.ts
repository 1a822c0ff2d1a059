export { loadNative, native, nativeInfo, NativeLoadError, type Backend, type NativeInfo } from "./native.js";
export * from "./kernels.js";
export * as ops from "./ops.js";
