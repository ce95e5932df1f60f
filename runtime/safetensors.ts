// The project's one reader/writer for the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON header
// `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { key: string } }`, then the
// raw little-endian tensor bytes, offsets counted from the end of the header.
//
// The byte-level functions are pure so they also run in a browser; only the *File helpers touch
// the file system, through a dynamic import of node:fs.

/** The typed array that holds each dtype's elements. F16/BF16 keep their raw 16-bit patterns. */
interface TensorArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

export type DType = keyof TensorArrays;

/** A tensor in row-major order; narrowing on `dtype` narrows `data`. */
export type Tensor = { [D in DType]: { dtype: D; shape: number[]; data: TensorArrays[D] } }[DType];

export interface SafeFile {
  /** The name used in error messages (the path for files read from disk). */
  name: string;
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
  /** The named tensor; throws naming the tensor (and both shapes) when missing or mis-shaped. */
  get(name: string, expectedShape?: readonly number[]): Tensor;
}

interface TypedArrayConstructor<A> {
  readonly BYTES_PER_ELEMENT: number;
  new (length: number): A;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): A;
}

const ARRAY_TYPES: { [D in DType]: TypedArrayConstructor<TensorArrays[D]> } = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

const DTYPES = Object.keys(ARRAY_TYPES) as DType[];

/** Same limit as the reference Rust implementation: anything larger is a corrupt length field. */
const MAX_HEADER_BYTES = 100_000_000;

// Typed arrays use the host's byte order and the format is little-endian; every platform Node and
// the browsers ship on is little-endian, so rather than byte-swap we refuse the exotic case.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndianHost(name: string): void {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error(`${name}: safetensors needs a little-endian host`);
}

function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(ARRAY_TYPES, value);
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * Parses a safetensors file held in memory. Tensors whose bytes are suitably aligned are views
 * into `bytes` (no copy, so they share its memory); misaligned ones are copied.
 * Every error message starts with `name`.
 */
export function readSafetensors(bytes: Uint8Array, name = 'safetensors'): SafeFile {
  assertLittleEndianHost(name);
  const fail = (message: string): never => {
    throw new Error(`${name}: ${message}`);
  };

  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length (truncated file?)`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} is implausible (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
  }
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(
      `header length ${headerLength} exceeds the ${bytes.length - 8} bytes after the length field (truncated file?)`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  const dataLength = bytes.length - dataStart;

  let header: unknown;
  let json: string;
  try {
    json = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart));
    header = JSON.parse(json);
  } catch (error) {
    return fail(`header is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  // JSON.parse keeps the last of two equal keys; two tensors under one name is a corrupt file.
  const duplicate = duplicateKey(json);
  if (duplicate !== undefined) fail(`header names '${duplicate}' twice`);

  const tensors = new Map<string, Tensor>();
  const extents: { key: string; begin: number; end: number }[] = [];
  let metadata: Record<string, string> = {};
  for (const [key, entry] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') metadata = parseMetadata(entry, fail);
    else {
      tensors.set(key, parseTensor(key, entry, bytes, dataStart, dataLength, fail));
      const [begin, end] = (entry as { data_offsets: [number, number] }).data_offsets;
      extents.push({ key, begin, end });
    }
  }
  checkExtents(extents, dataLength, fail);
  return makeSafeFile(name, tensors, metadata);
}

/**
 * The tensors' byte ranges, in offset order, must tile the data section exactly, as the format's
 * reference implementation requires: no two tensors share bytes, and no bytes belong to none.
 */
function checkExtents(
  extents: { key: string; begin: number; end: number }[],
  dataLength: number,
  fail: (message: string) => never,
): void {
  extents.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous: (typeof extents)[number] | undefined;
  for (const e of extents) {
    if (e.begin < at)
      fail(
        `tensor '${e.key}' (bytes ${e.begin}..${e.end}) overlaps tensor '${previous!.key}' (bytes ${previous!.begin}..${previous!.end})`,
      );
    if (e.begin > at)
      fail(`bytes ${at}..${e.begin} of the data section belong to no tensor (before tensor '${e.key}')`);
    at = e.end;
    previous = e;
  }
  if (at !== dataLength) fail(`bytes ${at}..${dataLength} of the data section belong to no tensor`);
}

/** The first key that occurs twice in one object of a JSON text, if any (JSON.parse hides them). */
function duplicateKey(json: string): string | undefined {
  const objects: (Set<string> | undefined)[] = []; // one entry per open object or array (undefined)
  let lastString: string | undefined;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      lastString = json.slice(i, j + 1);
      i = j;
    } else if (c === '{') objects.push(new Set());
    else if (c === '[') objects.push(undefined);
    else if (c === '}' || c === ']') objects.pop();
    else if (c === ':') {
      const keys = objects[objects.length - 1];
      const key = JSON.parse(lastString!) as string;
      if (keys?.has(key)) return key;
      keys?.add(key);
    }
  }
  return undefined;
}

function parseMetadata(entry: unknown, fail: (message: string) => never): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    return fail('__metadata__ is not a JSON object');
  }
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') fail(`__metadata__ value for '${key}' is not a string`);
  }
  return { ...(entry as Record<string, string>) };
}

function parseTensor(
  key: string,
  entry: unknown,
  bytes: Uint8Array,
  dataStart: number,
  dataLength: number,
  fail: (message: string) => never,
): Tensor {
  const bad = (message: string): never => fail(`tensor '${key}' ${message}`);
  if (typeof entry !== 'object' || entry === null) return bad('has no {dtype, shape, data_offsets} entry');
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;

  if (!isDType(dtype)) return bad(`has unknown dtype ${JSON.stringify(dtype)}; supported: ${DTYPES.join(', ')}`);
  if (!Array.isArray(shape) || !shape.every(isIndex)) return bad(`has invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    return bad(`has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) bad(`has data_offsets [${begin}, ${end}] that end before they begin`);
  if (end > dataLength) {
    bad(`has data_offsets [${begin}, ${end}] beyond the ${dataLength}-byte data section (truncated file?)`);
  }
  const ArrayType = ARRAY_TYPES[dtype];
  const count = elementCount(shape);
  if (end - begin !== count * ArrayType.BYTES_PER_ELEMENT) {
    bad(
      `has ${end - begin} bytes of data but ${dtype} ${formatShape(shape)} needs ${count * ArrayType.BYTES_PER_ELEMENT}`,
    );
  }

  const byteOffset = bytes.byteOffset + dataStart + begin;
  // A typed-array view must start at a multiple of its element size; copy the rare misaligned case.
  const data =
    byteOffset % ArrayType.BYTES_PER_ELEMENT === 0
      ? new ArrayType(bytes.buffer, byteOffset, count)
      : new ArrayType(bytes.slice(dataStart + begin, dataStart + end).buffer, 0, count);
  return { dtype, shape, data } as Tensor;
}

function makeSafeFile(name: string, tensors: Map<string, Tensor>, metadata: Record<string, string>): SafeFile {
  return {
    name,
    tensors,
    metadata,
    get(tensorName, expectedShape) {
      const tensor = tensors.get(tensorName);
      if (!tensor) {
        throw new Error(`${name}: no tensor '${tensorName}'; available: ${[...tensors.keys()].join(', ') || '(none)'}`);
      }
      if (expectedShape && formatShape(expectedShape) !== formatShape(tensor.shape)) {
        throw new Error(
          `${name}: tensor '${tensorName}' has shape ${formatShape(tensor.shape)}, expected ${formatShape(expectedShape)}`,
        );
      }
      return tensor;
    },
  };
}

/** Where safetensors bytes come from: a path or URL (fetched in a browser), the bytes, or a parsed file. */
export type SafetensorsSource = string | URL | ArrayBuffer | Uint8Array | SafeFile;

const inNode = () => typeof process !== 'undefined' && Boolean(process.versions?.node);

/**
 * Reads a safetensors source. In Node a string or `file:` URL is a file, read from disk; in a
 * browser (and for http(s) URLs anywhere) it is fetched.
 */
export async function loadSafetensors(source: SafetensorsSource): Promise<SafeFile> {
  if (source instanceof Uint8Array) return readSafetensors(source, 'safetensors');
  if (source instanceof ArrayBuffer) return readSafetensors(new Uint8Array(source), 'safetensors');
  if (typeof source !== 'string' && !(source instanceof URL)) return source;
  const name = String(source);
  const remote = /^https?:/i.test(name);
  if (inNode() && !remote) {
    const { fileURLToPath } = await import('node:url');
    return readSafetensorsFile(source instanceof URL || name.startsWith('file:') ? fileURLToPath(source) : name);
  }
  const response = await fetch(source);
  if (!response.ok) throw new Error(`${name}: fetching it failed: HTTP ${response.status} ${response.statusText}`);
  return readSafetensors(new Uint8Array(await response.arrayBuffer()), name);
}

/** Reads and parses a safetensors file (Node only); error messages start with `path`. */
export async function readSafetensorsFile(path: string): Promise<SafeFile> {
  const { readFile } = await import('node:fs/promises');
  return readSafetensors(await readFile(path), path);
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Serialises tensors (in the given order, grouped by descending element size so that every
 * tensor starts aligned for a zero-copy view) with optional string metadata.
 */
export function writeSafetensors(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  assertLittleEndianHost('writeSafetensors');
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  for (const [name, tensor] of entries) checkWritable(name, tensor);
  // Array.prototype.sort is stable, so equal sizes keep the caller's order.
  entries.sort(([, a], [, b]) => b.data.BYTES_PER_ELEMENT - a.data.BYTES_PER_ELEMENT);

  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new Error(`writeSafetensors: metadata value for '${key}' is not a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, { dtype, shape, data }] of entries) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces (JSON whitespace) so the data section starts 8-byte aligned.
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, { data }] of entries) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

function checkWritable(name: string, tensor: Tensor): void {
  const fail = (message: string): never => {
    throw new Error(`writeSafetensors: tensor '${name}' ${message}`);
  };
  if (name === '__metadata__' || name === '') fail('has a reserved name');
  if (!isDType(tensor.dtype)) {
    fail(`has unknown dtype ${JSON.stringify(tensor.dtype)}; supported: ${DTYPES.join(', ')}`);
  }
  if (!tensor.shape.every(isIndex)) fail(`has invalid shape ${JSON.stringify(tensor.shape)}`);
  const ArrayType = ARRAY_TYPES[tensor.dtype];
  if (!(tensor.data instanceof ArrayType)) {
    fail(`has dtype ${tensor.dtype} but its data is a ${tensor.data.constructor.name}, not a ${ArrayType.name}`);
  }
  if (tensor.data.length !== elementCount(tensor.shape)) {
    fail(
      `has ${tensor.data.length} elements but shape ${formatShape(tensor.shape)} needs ${elementCount(tensor.shape)}`,
    );
  }
}

/**
 * Writes a safetensors file atomically (Node only): through a fresh temporary file beside `path`,
 * renamed over it, so a failure never leaves a half-written file. Refuses a `path` that is not a
 * regular file (a device, a directory, a symbolic link) or that is one of `options.inputs`.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
  options: { inputs?: readonly string[] } = {},
): Promise<void> {
  const bytes = writeSafetensors(tensors, metadata);
  const { writeFileSafely } = await import('./safe-write.ts');
  await writeFileSafely(path, bytes, options.inputs);
}

// ---------------------------------------------------------------------------------------------
// Conversion

/**
 * The tensor's values as float64. F64 data is returned as is (shared, not copied). 64-bit integers
 * beyond 2^53 lose precision.
 */
export function toFloat64(tensor: Tensor): Float64Array {
  switch (tensor.dtype) {
    case 'F64':
      return tensor.data;
    case 'F16':
    case 'BF16':
      return Float64Array.from(toFloat32(tensor));
    case 'I64':
    case 'U64':
      return Float64Array.from(tensor.data, Number);
    default:
      return Float64Array.from(tensor.data);
  }
}

/**
 * The tensor's values as float32 (rounded from F64 and wide integers). F32 data is returned as is
 * (shared, not copied).
 */
export function toFloat32(tensor: Tensor): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensor.data;
    case 'F16':
      return Float32Array.from(tensor.data, halfToFloat);
    case 'BF16': {
      // bfloat16 is the top half of a float32, so widening is a shift of the bit pattern.
      const bits = Uint32Array.from(tensor.data, (b) => b << 16);
      return new Float32Array(bits.buffer);
    }
    case 'I64':
    case 'U64':
      return Float32Array.from(tensor.data, Number);
    default:
      return Float32Array.from(tensor.data);
  }
}

/** Decodes an IEEE 754 binary16 bit pattern (Float16Array is not in Node 20). */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
