import { ClaraError } from "../../lib/errors";

/** The ClaraError `fn` throws, checked to carry `code`. */
export function catchClara(fn: () => unknown, code: string): ClaraError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ClaraError);
    expect((e as ClaraError).code).toBe(code);
    return e as ClaraError;
  }
  throw new Error("expected a ClaraError, but nothing was thrown");
}
