// @clara/mlx/data: the three stages' training records, read from the reference's JSONL files,
// and stage-2/3 records derived from stage-1 ones.
export {
  readPretrainRecords,
  readInstructionRecords,
  readEndToEndRecords,
  type EndToEndRecord,
  type InstructionRecord,
  type PretrainDataType,
  type PretrainRecord,
  type ReadResult,
  type ReadStats,
} from "./records";
export { deriveInstructionRecords, deriveEndToEndRecords, type DeriveOptions } from "./derive";
