// A pickle VM for data only (protocol 2-5 opcodes): it builds dicts, lists, tuples, numbers,
// strings and bytes, and names only the globals its caller allows, refusing any other at the
// opcode that names it, before anything is built from it. What an allowed global means when it
// is called is the caller's (lib/io/pth.ts: torch's tensor rebuilds); only
// collections.OrderedDict is built in.

import { ClaraError } from "../errors";

/** A module-level name the pickle referred to (only ever an allowed one). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface UnpickleOptions {
  /** Names the pickle in messages, e.g. "adapters.pth (adapters/data.pkl)". */
  label?: string;
  file?: string;
  entry?: string;
  /** Every global the pickle may name ("module.name"); any other is E_PTH_UNSAFE. */
  allowedGlobals: readonly string[];
  /**
   * REDUCE of an allowed global other than collections.OrderedDict (built in): returns the value,
   * or throws fail(message) for arguments it does not accept. Undefined: the global is a type
   * name, not a callable.
   */
  reduce?: (fn: PickleGlobal, args: unknown[], fail: (message: string) => ClaraError) => unknown;
  /** Turns a persistent id (a tuple) into a value; without it BINPERSID is an error. */
  persistentLoad?: (pid: unknown[], position: number) => unknown;
  /** Names a value of the caller's own kinds in messages (e.g. "a tensor"); undefined: not one. */
  describe?: (value: unknown) => string | undefined;
}

const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d, NONE: 0x4e,
  BINPERSID: 0x51, REDUCE: 0x52, BINUNICODE: 0x58, EMPTY_LIST: 0x5d, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63,
  APPENDS: 0x65, BINGET: 0x68, LONG_BINGET: 0x6a, BINPUT: 0x71, LONG_BINPUT: 0x72, SETITEM: 0x73, TUPLE: 0x74,
  SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29, BINFLOAT: 0x47, BINBYTES: 0x42, SHORT_BINBYTES: 0x43,
  PROTO: 0x80, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95,
  INST: 0x69, OBJ: 0x6f, NEWOBJ: 0x81, NEWOBJ_EX: 0x92, EXT1: 0x82, EXT2: 0x83, EXT4: 0x84,
} as const;

const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** Python's pickle opcodes by byte, for naming the ones refused (protocol 0-5). */
const OTHER_OPS: Record<number, string> = {
  0x49: "INT", 0x4c: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING", 0x56: "UNICODE",
  0x50: "PERSID", 0x64: "DICT", 0x6c: "LIST", 0x67: "GET", 0x70: "PUT", 0x32: "DUP", 0x8f: "EMPTY_SET",
  0x90: "ADDITEMS", 0x91: "FROZENSET", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
};

function opName(op: number): string {
  return OP_NAMES[op] ?? OTHER_OPS[op] ?? `0x${op.toString(16).padStart(2, "0")}`;
}

/** A tuple: a frozen array (lists stay mutable, so APPEND on a tuple is refused). */
function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

/**
 * Runs a pickle with the allow-listed globals only and returns the object it describes:
 * dicts become Maps, lists and tuples arrays, tensors PthTensor views.
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  return new Unpickler(bytes, options).run();
}

class Unpickler {
  private pos = 0;
  private opStart = 0;
  private op = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;
  private readonly label: string;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.label = options.label ?? "the pickle";
  }

  private fail(message: string, code: "E_PTH" | "E_PTH_UNSAFE" = "E_PTH", field?: string): ClaraError {
    return new ClaraError(code, `${this.label}: ${message} (opcode ${opName(this.op)} at byte ${this.opStart})`, {
      file: this.options.file,
      entry: this.options.entry,
      field,
    });
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw this.fail(`ends inside an opcode (needs ${n} more bytes at byte ${this.pos}): data.pkl is truncated`);
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`has a length of ${v} bytes`);
    return Number(v);
  }

  private take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private utf8(n: number): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(this.take(n));
  }

  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw this.fail("ends inside a GLOBAL name: data.pkl is truncated");
    const s = new TextDecoder("latin1").decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private pop(): unknown {
    if (this.stack.length === 0) throw this.fail("pops an empty stack: the pickle is malformed");
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) throw this.fail("reads an empty stack: the pickle is malformed");
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (!prev) throw this.fail("has no MARK to pop to: the pickle is malformed");
    this.stack = prev;
    return items;
  }

  /** The allow-list check: refuses before anything is pushed. */
  private global(module: string, name: string): PickleGlobal {
    const qualified = `${module}.${name}`;
    if (!this.options.allowedGlobals.includes(qualified)) {
      throw this.fail(
        `names the global ${qualified}, which a weights-only checkpoint never needs; refused without building or calling anything ` +
          `(allowed: ${this.options.allowedGlobals.join(", ")})`,
        "E_PTH_UNSAFE",
        qualified,
      );
    }
    return new PickleGlobal(module, name);
  }

  private put(index: number): void {
    this.memo.set(index, this.top());
  }

  private get(index: number): void {
    if (!this.memo.has(index)) throw this.fail(`reads memo slot ${index}, which was never written: the pickle is malformed`);
    this.stack.push(this.memo.get(index));
  }

  private signedLong(b: Uint8Array): number | bigint {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  run(): unknown {
    while (true) {
      this.opStart = this.pos;
      if (this.pos >= this.bytes.length) {
        this.op = 0;
        throw this.fail("ends without a STOP opcode: data.pkl is truncated");
      }
      const op = (this.op = this.bytes[this.pos++]);
      switch (op) {
        case OP.PROTO: {
          const v = this.u8();
          if (v < 2 || v > 5) throw this.fail(`declares pickle protocol ${v}; torch.save writes protocol 2`);
          break;
        }
        case OP.FRAME:
          this.u64();
          break;
        case OP.STOP: {
          const value = this.pop();
          if (this.stack.length !== 0 || this.metastack.length !== 0) throw this.fail("stops with values left on the stack: the pickle is malformed");
          return value;
        }
        case OP.MARK:
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          this.pop();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.NONE:
          this.stack.push(null);
          break;
        case OP.NEWTRUE:
          this.stack.push(true);
          break;
        case OP.NEWFALSE:
          this.stack.push(false);
          break;
        case OP.BININT:
          this.need(4);
          this.stack.push(this.view.getInt32(this.pos, true));
          this.pos += 4;
          break;
        case OP.BININT1:
          this.stack.push(this.u8());
          break;
        case OP.BININT2:
          this.stack.push(this.u16());
          break;
        case OP.LONG1:
          this.stack.push(this.signedLong(this.take(this.u8())));
          break;
        case OP.LONG4: {
          const n = this.u32();
          if (n > 64) throw this.fail(`holds a ${n}-byte integer`);
          this.stack.push(this.signedLong(this.take(n)));
          break;
        }
        case OP.BINFLOAT:
          this.need(8);
          this.stack.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        case OP.SHORT_BINUNICODE:
          this.stack.push(this.utf8(this.u8()));
          break;
        case OP.BINUNICODE:
          this.stack.push(this.utf8(this.u32()));
          break;
        case OP.BINUNICODE8:
          this.stack.push(this.utf8(this.u64()));
          break;
        case OP.SHORT_BINBYTES:
          this.stack.push(this.take(this.u8()).slice());
          break;
        case OP.BINBYTES:
          this.stack.push(this.take(this.u32()).slice());
          break;
        case OP.BINBYTES8:
          this.stack.push(this.take(this.u64()).slice());
          break;
        case OP.EMPTY_DICT:
          this.stack.push(new Map());
          break;
        case OP.EMPTY_LIST:
          this.stack.push([]);
          break;
        case OP.EMPTY_TUPLE:
          this.stack.push(tuple([]));
          break;
        case OP.TUPLE: {
          const items = this.popMark(); // before reading this.stack, which popMark replaces
          this.stack.push(tuple(items));
          break;
        }
        case OP.TUPLE1:
          this.stack.push(tuple([this.pop()]));
          break;
        case OP.TUPLE2: {
          const b = this.pop();
          const a = this.pop();
          this.stack.push(tuple([a, b]));
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.stack.push(tuple([a, b, c]));
          break;
        }
        case OP.APPEND: {
          const v = this.pop();
          this.list(this.top()).push(v);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          this.list(this.top()).push(...items);
          break;
        }
        case OP.SETITEM: {
          const v = this.pop();
          const k = this.pop();
          this.dict(this.top()).set(this.key(k), v);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          if (items.length % 2 !== 0) throw this.fail("has an odd number of SETITEMS values: the pickle is malformed");
          const d = this.dict(this.top());
          for (let i = 0; i < items.length; i += 2) d.set(this.key(items[i]), items[i + 1]);
          break;
        }
        case OP.BINPUT:
          this.put(this.u8());
          break;
        case OP.LONG_BINPUT:
          this.put(this.u32());
          break;
        case OP.MEMOIZE:
          this.put(this.memo.size);
          break;
        case OP.BINGET:
          this.get(this.u8());
          break;
        case OP.LONG_BINGET:
          this.get(this.u32());
          break;
        case OP.GLOBAL: {
          const module = this.line();
          const name = this.line();
          this.stack.push(this.global(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== "string" || typeof name !== "string") throw this.fail("has a STACK_GLOBAL whose module or name is not a string");
          this.stack.push(this.global(module, name));
          break;
        }
        case OP.INST: {
          // INST names a class inline; check it like GLOBAL, then refuse the opcode itself.
          this.global(this.line(), this.line());
          throw this.fail("uses INST, which a tensor state dict never needs");
        }
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4: {
          const code = op === OP.EXT1 ? this.u8() : op === OP.EXT2 ? this.u16() : this.u32();
          throw this.fail(`names a global through copyreg extension code ${code}; refused without resolving it`, "E_PTH_UNSAFE", `ext:${code}`);
        }
        case OP.REDUCE: {
          const args = this.pop();
          const fn = this.pop();
          this.stack.push(this.call(fn, args));
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          const target = this.top();
          // Only OrderedDict state (e.g. state_dict()'s _metadata attribute) is expected; it is dropped.
          if (!(target instanceof Map) || !(state === null || state instanceof Map)) {
            throw this.fail(`sets the state of ${this.describe(target)}; only an OrderedDict's attribute dict is accepted`);
          }
          break;
        }
        case OP.BINPERSID: {
          const pid = this.pop();
          if (!this.options.persistentLoad) throw this.fail("holds a persistent id outside a checkpoint archive");
          if (!Array.isArray(pid)) throw this.fail(`holds a persistent id that is ${this.describe(pid)}, not a tuple`);
          this.stack.push(this.options.persistentLoad(pid, this.opStart));
          break;
        }
        default:
          throw this.fail(`uses opcode ${opName(op)}, which torch.save does not write for a tensor state dict`);
      }
    }
  }

  private describe(v: unknown): string {
    return describeValue(v, this.options.describe);
  }

  private list(v: unknown): unknown[] {
    if (!Array.isArray(v) || Object.isFrozen(v)) throw this.fail(`appends to ${this.describe(v)}, not a list`);
    return v;
  }

  private dict(v: unknown): Map<unknown, unknown> {
    if (!(v instanceof Map)) throw this.fail(`sets an item of ${this.describe(v)}, not a dict`);
    return v;
  }

  private key(k: unknown): unknown {
    if (typeof k === "string" || typeof k === "number" || typeof k === "bigint" || typeof k === "boolean" || k === null) return k;
    throw this.fail(`uses ${this.describe(k)} as a dict key; only strings and numbers are accepted`);
  }

  private call(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof PickleGlobal)) throw this.fail(`calls ${this.describe(fn)}, which is not an allowed callable`);
    if (!Array.isArray(args)) throw this.fail(`calls ${fn.qualifiedName} with ${this.describe(args)} instead of an argument tuple`);
    switch (fn.qualifiedName) {
      case "collections.OrderedDict": {
        const out = new Map<unknown, unknown>();
        if (args.length === 0) return out;
        if (args.length === 1 && Array.isArray(args[0])) {
          for (const pair of args[0]) {
            if (!Array.isArray(pair) || pair.length !== 2) throw this.fail("builds an OrderedDict from something other than (key, value) pairs");
            out.set(this.key(pair[0]), pair[1]);
          }
          return out;
        }
        throw this.fail("builds an OrderedDict from unsupported arguments");
      }
      default: {
        const value = this.options.reduce?.(fn, args, (message) => this.fail(message));
        if (value === undefined) throw this.fail(`calls ${fn.qualifiedName}, which is a type name here, not a callable`);
        return value;
      }
    }
  }
}

/** A value as messages name it ("a dict", "a 3-tuple", …); `describe` names the caller's own kinds. */
export function describeValue(v: unknown, describe?: (value: unknown) => string | undefined): string {
  if (v === null) return "None";
  if (v instanceof PickleGlobal) return v.qualifiedName;
  const own = describe?.(v);
  if (own !== undefined) return own;
  if (v instanceof Map) return "a dict";
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a ${v.length}-tuple` : `a list of ${v.length}`;
  if (v instanceof Uint8Array) return "bytes";
  return `${typeof v} ${String(v)}`;
}
