// import() of ESM-only packages (pdfjs-dist, vega, vega-lite) from this CommonJS package.
// TypeScript rewrites `import()` into `require()` under module node16 + CommonJS output, so the
// call is built with `new Function`. Inside jest's module sandbox that import() has no loader
// (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING without --experimental-vm-modules); there the module
// is imported in Node's main context instead, by absolute file URL.

import { pathToFileURL } from "node:url";
import * as vm from "node:vm";

const nativeImport = new Function("m", "return import(m)") as (m: string) => Promise<any>;
let mainContextImport: ((m: string) => Promise<any>) | undefined;

export async function importEsm(specifier: string): Promise<any> {
  try {
    return await nativeImport(specifier);
  } catch (e) {
    if (!String((e as NodeJS.ErrnoException).code).startsWith("ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING")) throw e;
    const loader = (vm.constants as unknown as { USE_MAIN_CONTEXT_DEFAULT_LOADER?: symbol } | undefined)?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
    if (!loader) throw e;
    mainContextImport ??= vm.runInThisContext("(m) => import(m)", { importModuleDynamically: loader as never });
    return mainContextImport!(pathToFileURL(require.resolve(specifier)).href);
  }
}
