export { loadNative, native, nativeInfo, NativeLoadError, type Backend, type NativeInfo } from "./native.js";
export * from "./eval/index.js";
