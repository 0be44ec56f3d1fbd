// A small reader of .zip files (stored and deflated entries) for dataset uploads: the central
// directory is parsed here and deflate is the browser's own DecompressionStream. Written for this
// console (MIT); format: PKWARE APPNOTE.TXT sections 4.3.7 (local header), 4.3.12 (central
// directory), 4.3.16 (end of central directory).

const EOCD = 0x06054b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

/** The files of ``blob`` as [{path, size, blob()}] (directories and ZIP64 archives are refused). */
export async function readZip(blob) {
  const tailSize = Math.min(blob.size, 65557);
  const tail = new DataView(await blob.slice(blob.size - tailSize).arrayBuffer());
  let end = -1;
  for (let i = tailSize - 22; i >= 0; i--) if (tail.getUint32(i, true) === EOCD) { end = i; break; }
  if (end < 0) throw new Error("not a zip file (no end-of-central-directory record)");
  const count = tail.getUint16(end + 10, true);
  const dirSize = tail.getUint32(end + 12, true);
  const dirOffset = tail.getUint32(end + 16, true);
  if (dirOffset === 0xffffffff) throw new Error("ZIP64 archives are not supported: upload the folder");
  const dir = new DataView(await blob.slice(dirOffset, dirOffset + dirSize).arrayBuffer());
  const decoder = new TextDecoder();
  const entries = [];
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (dir.getUint32(p, true) !== CENTRAL) throw new Error("corrupt zip central directory");
    const method = dir.getUint16(p + 10, true);
    const compressed = dir.getUint32(p + 20, true);
    const size = dir.getUint32(p + 24, true);
    const nameLength = dir.getUint16(p + 28, true);
    const extraLength = dir.getUint16(p + 30, true);
    const commentLength = dir.getUint16(p + 32, true);
    const localOffset = dir.getUint32(p + 42, true);
    const path = decoder.decode(new Uint8Array(dir.buffer, dir.byteOffset + p + 46, nameLength));
    p += 46 + nameLength + extraLength + commentLength;
    if (path.endsWith("/")) continue;
    if (method !== 0 && method !== 8) throw new Error(`${path}: compression method ${method} is not supported`);
    entries.push({ path, size, blob: () => entryBlob(blob, localOffset, method, compressed) });
  }
  return entries;
}

async function entryBlob(zip, offset, method, compressed) {
  const header = new DataView(await zip.slice(offset, offset + 30).arrayBuffer());
  if (header.getUint32(0, true) !== LOCAL) throw new Error("corrupt zip local header");
  const start = offset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  const data = zip.slice(start, start + compressed);
  if (method === 0) return data;
  const stream = data.stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Response(stream).blob();
}
