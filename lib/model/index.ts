// @clara/mlx/model: the pieces around a model beside loadModel and ClaraModel (the main entry):
// a tokenizer on its own, the names of CLaRa's adapters and its default settings.
export { Tokenizer, type ChatMessage } from "../tokenizer";
export { ADAPTERS } from "../clara/clara-model";
export { DEFAULTS as CLARA_DEFAULTS, type LoraOptions, type MemoryInput } from "../clara/config";
export type { ComputeDType } from "./model";
export type { ModelConfig } from "./config";
export type { QuantizeOption } from "./quantization";
