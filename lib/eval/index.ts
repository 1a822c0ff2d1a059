/** Public API of the evaluation loop. */
export type { EvalModel, LoglikelihoodRequest, LoglikelihoodResult, WindowScore, GenerateOptions, GenerateResult } from "./model.js";
export type { EfficiencyProbe, EfficiencyReport, LatencyRequest, LatencyResult, Measurable } from "./efficiency.js";
export { efficiencyProbeOf, measureEfficiency } from "./efficiency.js";
export { scoreLoglikelihood, scoreWindowsBatched, generateBatched, packBatches, type BatchOptions, type PrefixScorer, type BatchGenerator } from "./batching.js";
export { encodePair, type Tokenizer as EvalTokenizer } from "./requests.js";
export { nonOverlappingWindows, slidingWindows, accumulateNll, wikitext2GptqText, type PplWindow } from "./perplexity.js";
export { AgreementAccumulator, type AgreementStats } from "./kl.js";
export { DatasetError, dataRoot } from "./data.js";
export { getTask, taskNames, registerTask } from "./tasks/registry.js";
export type { EvalTask, TaskOptions, TaskResult } from "./tasks/types.js";
export { runEvaluation, type SettingModelFactory, type RunHooks } from "./runner.js";
export { loadModel, registerModelLoader, type ModelLoader, type LoadOptions } from "./model_factory.js";
export { NativeEvalModel } from "./native_model.js";
export { ToyBigramModel } from "./toy_model.js";
export { progressFactory, type ProgressFactory, type ProgressMode } from "./progress.js";
export { renderTable } from "../report/table.js";
export { ConfigMismatchError, type ResultsFile, type EvalConfig, type SettingSpec } from "../report/results.js";
