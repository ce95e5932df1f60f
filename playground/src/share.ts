/**
 * The page's state in the URL's fragment: JSON, deflated with the browser's CompressionStream and
 * written as base64url, so a link reproduces the page and the spec never reaches a server.
 */
import type { SequenceOptions } from './synthetic.ts';
import type { FormRequest } from './tttc.ts';

export interface PageState {
  /** The example the spec started from (a file name), or a name of the user's choosing. */
  file: string;
  spec: string;
  dims: Record<string, number>;
  form: FormRequest;
  run: SequenceOptions;
}

const PREFIX = '#s=';

async function pipe(
  bytes: Uint8Array<ArrayBuffer>,
  stream: CompressionStream | DecompressionStream,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer());
}

function toBase64Url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

export async function encodeState(state: PageState): Promise<string> {
  const json = new TextEncoder().encode(JSON.stringify(state));
  return PREFIX + toBase64Url(await pipe(json, new CompressionStream('deflate-raw')));
}

/** The state a fragment holds, or undefined when it holds none; throws when it is damaged. */
export async function decodeState(hash: string): Promise<Partial<PageState> | undefined> {
  if (!hash.startsWith(PREFIX)) return undefined;
  const bytes = await pipe(fromBase64Url(hash.slice(PREFIX.length)), new DecompressionStream('deflate-raw'));
  const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof value !== 'object' || value === null) throw new Error('the link holds no page state');
  return value as Partial<PageState>;
}
