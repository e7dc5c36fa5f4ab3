// Weir transform SDK for AssemblyScript: the host ABI of
// docs/format/transform-abi.md. A module's entry file registers one
// function (onFilter or onMap) at top level and re-exports this file:
//
//   import { Record, onMap } from "../assembly/index";
//   export * from "../assembly/index";
//   function shout(r: Record): Record { r.upperValueAscii(); return r; }
//   onMap(shout);
//
// A Record's key, value and headers point into the batch the host passed
// in; they are valid during the call only.

const KIND_FILTER: i32 = 1;
const KIND_MAP: i32 = 2;
const ERROR_OUTPUT: u8 = 0xff;
const KEEP_SET_OUTPUT: u8 = 0xfd;
const FLAG_RECORD_TABLE: u32 = 2;
const TABLE_ENTRY: usize = 40;

@external("weir", "set_error")
declare function hostSetError(ptr: usize, len: i32): void;

export class Record {
  offset: i64 = 0;
  timestamp: i64 = 0;
  output: i32 = 0;
  keyPtr: usize = 0;
  keyLen: i32 = -1; // -1: null
  valuePtr: usize = 0;
  valueLen: i32 = -1;
  headersPtr: usize = 0; // the header count and headers, as encoded
  headersLen: i32 = 0;
  // Keep replaced values alive until they are written out.
  private valueRef: Uint8Array | null = null;

  valueString(): string {
    return this.valueLen < 0 ? "" : String.UTF8.decodeUnsafe(this.valuePtr, this.valueLen);
  }

  keyString(): string {
    return this.keyLen < 0 ? "" : String.UTF8.decodeUnsafe(this.keyPtr, this.keyLen);
  }

  setValue(v: Uint8Array): void {
    this.valueRef = v;
    this.valuePtr = v.dataStart;
    this.valueLen = v.length;
  }

  setValueString(s: string): void {
    this.setValue(Uint8Array.wrap(String.UTF8.encode(s)));
  }

  // upperValueAscii upper-cases ASCII letters of the value in place,
  // eight bytes at a time: per byte, the high bit of a is set if the
  // byte's low seven bits are 'a' or more, that of z if they are past
  // 'z'; bytes with their own high bit set (not ASCII) are left alone.
  upperValueAscii(): void {
    const p = this.valuePtr;
    const n = this.valueLen;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      const x = load<u64>(p + i);
      const low = x & 0x7f7f7f7f7f7f7f7f;
      const a = low + 0x1f1f1f1f1f1f1f1f; // 0x80 - 'a'
      const z = low + 0x0505050505050505; // 0x80 - 'z' - 1
      const lower = a & ~z & ~x & 0x8080808080808080;
      store<u64>(p + i, x ^ (lower >> 2)); // 0x80 >> 2 is the case bit
    }
    for (; i < n; i++) {
      const c = load<u8>(p + i);
      if (c >= 97 && c <= 122) store<u8>(p + i, c - 32);
    }
  }

  // valueContains reports whether the value contains the bytes of s.
  valueContains(s: string): bool {
    const needle = String.UTF8.encode(s);
    const n = needle.byteLength;
    const np = changetype<usize>(needle);
    for (let i = 0; i + n <= this.valueLen; i++) {
      if (memory.compare(this.valuePtr + i, np, n) == 0) return true;
    }
    return false;
  }
}

let kind: i32 = 0;
let filterFn: ((r: Record) => bool) | null = null;
let mapFn: ((r: Record) => Record) | null = null;
let params = new Map<string, string>();

export function onFilter(fn: (r: Record) => bool): void {
  kind = KIND_FILTER;
  filterFn = fn;
}

export function onMap(fn: (r: Record) => Record): void {
  kind = KIND_MAP;
  mapFn = fn;
}

// param returns a deploy-time parameter, or def when it is not set.
export function param(name: string, def: string = ""): string {
  return params.has(name) ? params.get(name) : def;
}

// --- buffers ---

let inBuf = new ArrayBuffer(0);
let outBuf = new ArrayBuffer(64 * 1024);
let outLen: i32 = 0;
let rec = new Record();

function ensureOut(n: i32): void {
  if (outLen + n <= outBuf.byteLength) return;
  let size = outBuf.byteLength * 2;
  while (size < outLen + n) size *= 2;
  const grown = new ArrayBuffer(size);
  memory.copy(changetype<usize>(grown), changetype<usize>(outBuf), outLen);
  outBuf = grown;
}

function putByte(b: u8): void {
  ensureOut(1);
  store<u8>(changetype<usize>(outBuf) + outLen, b);
  outLen++;
}

function putVarint(v: i64): void {
  let u = <u64>((v << 1) ^ (v >> 63));
  ensureOut(10);
  const base = changetype<usize>(outBuf);
  while (u >= 0x80) {
    store<u8>(base + outLen, <u8>(u | 0x80));
    outLen++;
    u >>= 7;
  }
  store<u8>(base + outLen, <u8>u);
  outLen++;
}

function putBytes(p: usize, n: i32): void {
  putVarint(n);
  if (n <= 0) return;
  ensureOut(n);
  memory.copy(changetype<usize>(outBuf) + outLen, p, n);
  outLen += n;
}

// --- decoding ---

let rp: usize = 0; // read position
let rEnd: usize = 0;
let bad = false;

function getUvarint(): u64 {
  let shift: u64 = 0;
  let u: u64 = 0;
  while (rp < rEnd) {
    const b = load<u8>(rp);
    rp++;
    u |= (<u64>(b & 0x7f)) << shift;
    if (b < 0x80) return u;
    shift += 7;
    if (shift > 63) break;
  }
  bad = true;
  return 0;
}

function getVarint(): i64 {
  const u = getUvarint();
  return <i64>(u >> 1) ^ -(<i64>(u & 1));
}

function getString(): string {
  const n = <i32>getUvarint();
  if (bad || rp + n > rEnd) {
    bad = true;
    return "";
  }
  const s = String.UTF8.decodeUnsafe(rp, n);
  rp += n;
  return s;
}

// --- the exports of the ABI ---

export function weir_abi_v1(): void {}

// The module takes a record table with each input frame: the host has
// located every record's fields, so nothing is parsed here.
export function weir_record_table(): void {}

export function weir_alloc(size: i32): usize {
  if (size > inBuf.byteLength) inBuf = new ArrayBuffer(size);
  return changetype<usize>(inBuf);
}

function fail(msg: string): void {
  const b = String.UTF8.encode(msg);
  hostSetError(changetype<usize>(b), b.byteLength);
}

export function weir_init(n: i32): i32 {
  rp = changetype<usize>(inBuf);
  rEnd = rp + n;
  bad = false;
  if (getUvarint() != 1) {
    fail("unknown init frame version");
    return -1;
  }
  getString(); // input topic
  const outs = <i32>getUvarint();
  for (let i = 0; i < outs; i++) getString();
  const np = <i32>getUvarint();
  params = new Map<string, string>();
  for (let i = 0; i < np; i++) {
    const k = getString();
    const v = getString();
    params.set(k, v);
  }
  if (bad) {
    fail("malformed init frame");
    return -1;
  }
  if (kind == 0) {
    fail("the module registered no transform function (call onFilter or onMap at top level)");
    return -1;
  }
  return kind;
}

function emit(r: Record, baseOffset: i64, baseTs: i64): void {
  const start = outLen;
  ensureOut(5);
  outLen += 5; // room for the entry length
  const body = outLen;
  putByte(<u8>r.output);
  putVarint(rec.offset - baseOffset);
  putVarint(r.timestamp - baseTs);
  putBytes(r.keyPtr, r.keyLen);
  putBytes(r.valuePtr, r.valueLen);
  if (r.headersLen > 0) {
    ensureOut(r.headersLen);
    memory.copy(changetype<usize>(outBuf) + outLen, r.headersPtr, r.headersLen);
    outLen += r.headersLen;
  } else {
    putByte(0);
  }
  // Write the length as a 5-byte varint: fixed width, no move.
  const n = outLen - body;
  let u = <u64>(n << 1);
  const p = changetype<usize>(outBuf) + start;
  for (let i = 0; i < 4; i++) {
    store<u8>(p + i, <u8>(u | 0x80));
    u >>= 7;
  }
  store<u8>(p + 4, <u8>u);
}

// varintLen is the size of v as a zigzag varint.
function varintLen(v: i64): i32 {
  let u = <u64>((v << 1) ^ (v >> 63));
  let n = 1;
  while (u >= 0x80) {
    u >>= 7;
    n++;
  }
  return n;
}

// keepSetStart writes the head of a keep-set entry for count records (a
// filter's whole answer: a bit per input record, set if it is kept; the
// host takes kept records from its input) and returns where the bits are.
function keepSetStart(count: i32): usize {
  const size = 1 + varintLen(count) + ((count + 7) >> 3);
  ensureOut(size + 5);
  putVarint(size);
  putByte(KEEP_SET_OUTPUT);
  putVarint(count);
  const bits = changetype<usize>(outBuf) + outLen;
  memory.fill(bits, 0, (count + 7) >> 3);
  outLen += (count + 7) >> 3;
  return bits;
}

export function weir_process(n: i32): i64 {
  const base = changetype<usize>(inBuf);
  if (n < 40) {
    fail("input frame too short");
    return -1;
  }
  const baseOffset = load<i64>(base + 8);
  const baseTs = load<i64>(base + 16);
  const count = load<i32>(base + 32);
  if (count < 0 || count > n) {
    fail("bad record count");
    return -1;
  }
  if ((load<u32>(base + 4) & FLAG_RECORD_TABLE) == 0 || <i64>count * TABLE_ENTRY > <i64>(n - 40)) {
    fail("input frame without its record table");
    return -1;
  }
  const recs = base + 40 + <usize>count * TABLE_ENTRY;
  const recsLen = <u64>(base + n - recs);
  outLen = 0;
  let bits: usize = 0;
  if (kind == KIND_FILTER) bits = keepSetStart(count);
  for (let i = 0; i < count; i++) {
    // One table entry: i64 timestamp delta, u32 offset delta, then i32
    // key position, key length, value position, value length, headers
    // position, header count and record end.
    const e = base + 40 + <usize>i * TABLE_ENTRY;
    rec.timestamp = baseTs + load<i64>(e);
    rec.offset = baseOffset + <i64>load<u32>(e + 8);
    rec.output = 0;
    rec.keyLen = load<i32>(e + 16);
    rec.keyPtr = recs + load<u32>(e + 12);
    rec.valueLen = load<i32>(e + 24);
    rec.valuePtr = recs + load<u32>(e + 20);
    const hdrs = load<u32>(e + 28);
    const end = load<u32>(e + 36);
    rec.headersPtr = recs + hdrs;
    rec.headersLen = <i32>(end - hdrs);
    if (<u64>end > recsLen || hdrs > end ||
        (rec.keyLen > 0 && <u64>load<u32>(e + 12) + <u64>rec.keyLen > recsLen) ||
        (rec.valueLen > 0 && <u64>load<u32>(e + 20) + <u64>rec.valueLen > recsLen)) {
      fail("record table entry out of range");
      return -1;
    }
    if (kind == KIND_FILTER) {
      if (filterFn!(rec)) store<u8>(bits + (i >> 3), load<u8>(bits + (i >> 3)) | (<u8>1 << <u8>(i & 7)));
    } else {
      emit(mapFn!(rec), baseOffset, baseTs);
    }
  }
  return (<i64>changetype<usize>(outBuf) << 32) | <i64>outLen;
}
