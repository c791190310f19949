// Merging settings: the defaults (applied later: stage-settings.ts), then the --config file's top
// level, then its section for the stage or command, then flags (for pipeline and demo, then
// --stageN.<key> flags). Unknown or misplaced keys are errors naming the file, line and key.

import { ClaraError } from "../../lib";
import type { ConfigFile } from "./config-file";
import { camel, checkValue, EVAL_KEYS, kebab, settingsFor, SETTINGS, type CommandName, type Section, type Settings } from "./settings";

/** The flags given on the command line for `command` (undefined ones left out), checked. */
export function flagSettings(command: CommandName, argv: Record<string, unknown>): Settings {
  const out: Settings = {};
  for (const key of settingsFor(command)) {
    let v = argv[key];
    if (v === undefined) continue;
    if (Array.isArray(v)) v = v[v.length - 1]; // a repeated flag: the last one wins
    out[key] = checkValue(key, v, { name: `--${kebab(key)}` });
  }
  return out;
}

/** The top-level keys of a config file that `target` reads. */
function topFor(cfg: ConfigFile | undefined, keys: readonly string[]): Settings {
  const out: Settings = {};
  if (!cfg) return out;
  for (const key of keys) if (cfg.top[key] !== undefined) out[key] = cfg.top[key];
  return out;
}

/** A config section, every key checked to belong to `keys`. */
function sectionFor(cfg: ConfigFile | undefined, section: Section, keys: readonly string[]): Settings {
  const s = cfg?.sections[section];
  if (!s) return {};
  for (const key of Object.keys(s)) {
    if (!keys.includes(key)) {
      const owners = Object.keys(SETTINGS).includes(key) ? SETTINGS[key].commands.filter((c) => c.startsWith("stage")).join(", ") : "";
      throw new ClaraError("E_INVALID_ARGUMENT", `${section} does not take "${key}"${owners ? ` (a setting of ${owners})` : ""}; move or remove it`, {
        file: cfg!.file,
        line: cfg!.lineOf(`${section}.${key}`),
        field: `${section}.${key}`,
      });
    }
  }
  return { ...s };
}

/** --stageN.<key> / --eval.<key> flags of pipeline and demo. */
function dottedFlags(argv: Record<string, unknown>, section: Section, keys: readonly string[]): Settings {
  const raw = argv[section];
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ClaraError("E_INVALID_ARGUMENT", `give settings as --${section}.<setting> <value>, e.g. --${section}.max-steps 10`, { field: `--${section}` });
  }
  const out: Settings = {};
  for (const [rawKey, value] of Object.entries(raw as Record<string, unknown>)) {
    const key = camel(rawKey);
    if (rawKey !== key && key in (raw as Record<string, unknown>)) continue; // yargs gives both spellings
    const name = `--${section}.${kebab(key)}`;
    if (!keys.includes(key)) throw new ClaraError("E_INVALID_ARGUMENT", `unknown setting for ${section}; see clara-train ${section === "eval" ? "pipeline" : section} --help`, { field: name });
    out[key] = checkValue(key, Array.isArray(value) ? value[value.length - 1] : value, { name });
  }
  return out;
}

/** Settings of a single-stage command (stage1/2/3) or make-data. */
export function commandSettings(command: "stage1" | "stage2" | "stage3" | "make-data", argv: Record<string, unknown>, cfg?: ConfigFile): Settings {
  const keys = settingsFor(command);
  const section: Section = command === "make-data" ? "makeData" : command;
  return { ...topFor(cfg, keys), ...sectionFor(cfg, section, keys), ...flagSettings(command, argv) };
}

/** The settings of one stage inside pipeline or demo. */
export function pipelineStageSettings(stage: "stage1" | "stage2" | "stage3", command: "pipeline" | "demo", argv: Record<string, unknown>, cfg?: ConfigFile): Settings {
  const keys = settingsFor(stage);
  const shared = flagSettings(command, argv);
  const fromFlags: Settings = {};
  for (const key of Object.keys(shared)) if (keys.includes(key)) fromFlags[key] = shared[key];
  return { ...topFor(cfg, keys), ...sectionFor(cfg, stage, keys), ...fromFlags, ...dottedFlags(argv, stage, keys) };
}

export function pipelineEvalSettings(command: "pipeline" | "demo", argv: Record<string, unknown>, cfg?: ConfigFile): Settings {
  const keys = [...EVAL_KEYS] as string[];
  const shared = flagSettings(command, argv);
  const fromFlags: Settings = {};
  for (const key of Object.keys(shared)) if (keys.includes(key)) fromFlags[key] = shared[key];
  const top = topFor(cfg, keys.filter((k) => k !== "k"));
  return { ...top, ...sectionFor(cfg, "eval", keys), ...fromFlags, ...dottedFlags(argv, "eval", keys) };
}

/** Settings every stage of a pipeline shares that are not stage settings (force, …). */
export function pipelineSettings(command: "pipeline" | "demo", argv: Record<string, unknown>, cfg?: ConfigFile): Settings {
  return { ...topFor(cfg, settingsFor(command)), ...flagSettings(command, argv) };
}
