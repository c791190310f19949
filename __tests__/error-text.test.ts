// Error and help texts point at things that exist: every `--flag` a message of lib/ or tools/
// names is an option of one of our CLIs (a message once suggested `clara ask --from`, which ask
// does not have), and a printed error names its file once.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readNpz, writeNpz } from "../lib/io/npz";
import { tensor } from "../lib/tensor";
import { SETTINGS } from "../tools/commands/settings";
import { formatError } from "../tools/commands/ui";
import { REPO } from "./helpers/tiny-clara";

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(REPO, dir), { recursive: true }).map(String).filter((f) => f.endsWith(".ts")).map((f) => path.join(REPO, dir, f));
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

// Other programs' flags our texts may name, each only after its program's name.
const OTHER_PROGRAMS = ["qpdf", "huggingface-cli", "hf download", "npm", "node", "mlx_lm", "pip"];

it("every --flag named in a string of lib/ or tools/ is an option of our CLIs", () => {
  const files = [...sources("lib"), ...sources("tools")];
  const known = new Set<string>(["help", "version", ...Object.keys(SETTINGS).map(kebab)]);
  for (const f of files) {
    for (const m of fs.readFileSync(f, "utf8").matchAll(/\.(?:option|positional)\(\s*"([a-z][a-z0-9-]*)"/g)) known.add(m[1]);
  }
  expect(known.size).toBeGreaterThan(40);
  const unknown: string[] = [];
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8");
    for (const literal of text.matchAll(/(["'`])((?:\\.|(?!\1)[^\n])*)\1/g)) {
      const s = literal[2];
      for (const flag of s.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)) {
        const before = s.slice(0, flag.index);
        if (OTHER_PROGRAMS.some((p) => before.includes(p))) continue;
        const name = flag[1];
        if (!known.has(name) && !(name.startsWith("no-") && known.has(name.slice(3)))) unknown.push(`${path.relative(REPO, f)}: --${name}`);
      }
    }
  }
  expect(unknown).toEqual([]);
});

it("a printed .npz error names its file once, for the archive and for a member", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-errtext-"));
  try {
    const broken = path.join(dir, "broken.npz");
    fs.writeFileSync(broken, Buffer.from("PK\u0003\u0004 not really a zip"));
    const good = path.join(dir, "good.npz");
    writeNpz(good, { w: tensor("float32", [4], new Float32Array([1, 2, 3, 4])) });
    // Cut the archive inside its only member's data: a member-level error.
    const bytes = fs.readFileSync(good);
    const truncated = path.join(dir, "truncated.npz");
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 40));
    for (const file of [broken, truncated]) {
      let err: unknown;
      try {
        readNpz(file);
      } catch (e) {
        err = e;
      }
      const line = formatError(err, "clara");
      expect(line.split(file).length - 1).toBe(1);
      expect(line).toMatch(/^clara: /);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
