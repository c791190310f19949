// ClaraError: the one error class of the package. Native code raises it too:
// lib/native.ts hands this class to the addon at load time (better-sqlite3's pattern),
// so a failure inside MLX arrives as a ClaraError with MLX's own message.

export type ClaraErrorCode =
  | "E_NATIVE" // an exception thrown by MLX or by native/ (message is MLX's)
  | "E_NATIVE_LOAD" // the addon or libmlx could not be loaded
  | "E_INVALID_ARGUMENT" // a JS argument of the wrong type, shape or value
  | "E_NPZ" // a malformed, truncated or unsupported .npz / .npy file
  | "E_IO" // a file could not be read or written
  | "E_DATA_FIELD" // a data record with a missing or malformed field
  | "E_DATA_FORMAT" // a data file that is not valid JSON Lines, or holds no records
  | "E_GGUF" // a malformed, truncated or unsupported .gguf file
  | "E_PTH" // a malformed, truncated or unsupported PyTorch (torch.save zip) checkpoint
  | "E_PTH_UNSAFE" // a .pth pickle naming a global a tensor state dict never needs (refused, nothing built)
  | "E_TOKENIZER" // a tokenizer that cannot be built or used (unsupported type, no chat template)
  | "E_MODEL_FILES" // a model folder missing a file it needs (tokenizer.json, ...)
  | "E_MODEL_CONFIG" // config.json / GGUF metadata with a missing or unsupported field
  | "E_MODEL_TENSOR" // weights missing a tensor, or one of the wrong shape (native)
  | "E_CHECKPOINT" // a checkpoint file that is not ours or is incomplete
  | "E_CHECKPOINT_MISMATCH" // a checkpoint made for another base model, rate or stage
  | "E_NONFINITE" // a NaN/inf loss or gradient; nothing was applied (native)
  | "E_DISPOSED" // a model used after dispose() (native)
  | "E_BUSY" // a call that would discard the training run in progress on the model (another trainer, new weights)
  | "E_NO_TRAINER" // a training call before createTrainer() (native)
  | "E_OPTIMIZER_STATE" // optimizer state that does not match the trainer (native)
  | "E_PARAMETER_SHAPE" // setParameters with a shape unlike the model's (native)
  | "E_INDEX" // an index folder that is not ours or is inconsistent
  | "E_MEMORY" // work that cannot fit MLX's memory limit
  | "E_PDF"; // a file that is not a PDF, is password-protected, or has no text layer

export interface ClaraErrorDetails {
  file?: string;
  line?: number;
  field?: string;
  /** An entry inside a container file, e.g. the member of an .npz archive. */
  entry?: string;
  cause?: unknown;
}

export class ClaraError extends Error {
  readonly code: ClaraErrorCode;
  readonly file?: string;
  readonly line?: number;
  readonly field?: string;
  readonly entry?: string;

  constructor(code: ClaraErrorCode, message: string, details: ClaraErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "ClaraError";
    this.code = code;
    if (details.file !== undefined) this.file = details.file;
    if (details.line !== undefined) this.line = details.line;
    if (details.field !== undefined) this.field = details.field;
    if (details.entry !== undefined) this.entry = details.entry;
  }
}

/** "Expected <expected> for <name> but received <actual>" (sharp's wording). */
export function invalidArgument(name: string, expected: string, actual: unknown): ClaraError {
  return new ClaraError(
    "E_INVALID_ARGUMENT",
    `Expected ${expected} for ${name} but received ${describe(actual)}`,
    { field: name },
  );
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of length ${(value as unknown as { length: number }).length}`;
  if (typeof value === "string") return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (typeof value === "object") return `object`;
  return `${typeof value} ${String(value)}`;
}
