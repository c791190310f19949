// The CLIs under test run from dist/, which `npm test` builds before jest starts (a test does not
// compile): a suite that spawns them first checks that the build is not older than the sources.
import * as fs from "node:fs";
import * as path from "node:path";

export const REPO = path.resolve(__dirname, "..", "..");

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Throws when the built CLI file is missing or older than a source in tools/ or lib/. */
export function assertBuilt(cli: string): void {
  const built = fs.existsSync(cli) ? fs.statSync(cli).mtimeMs : 0;
  if (Math.max(newestSource(path.join(REPO, "tools")), newestSource(path.join(REPO, "lib"))) > built) {
    throw new Error(`${cli} is missing or older than the sources: run \`npm run build\` (npm test does) before this suite`);
  }
}
