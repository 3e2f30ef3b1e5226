// Checks that an artifact's bytes are what its MIME type says.
import { parse } from "yaml";

export const artifactMimeTypes = [
  "text/plain",
  "application/json",
  "application/yaml",
  "image/png",
  "image/jpeg",
] as const;
export type ArtifactMimeType = (typeof artifactMimeTypes)[number];

const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function utf8Text(bytes: Buffer): string | undefined {
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  let decoded: string;
  try {
    decoded = text.decode(bytes);
  } catch {
    return undefined;
  }
  // Control characters other than tab, newline and carriage return mean binary data.
  for (let i = 0; i < decoded.length; i++) {
    const c = decoded.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return undefined;
  }
  return decoded;
}

/** undefined when `bytes` fit `mimeType`, else a sentence saying why not. */
export function mimeMismatch(mimeType: string, bytes: Buffer): string | undefined {
  switch (mimeType) {
    case "image/png":
      return bytes.subarray(0, 8).equals(png)
        ? undefined
        : "the content is not a PNG image (no PNG signature)";
    case "image/jpeg":
      return bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff
        ? undefined
        : "the content is not a JPEG image (no JPEG start-of-image marker)";
    case "text/plain":
      return utf8Text(bytes) === undefined ? "the content is not UTF-8 text" : undefined;
    case "application/json": {
      const text = utf8Text(bytes);
      if (text === undefined) return "the content is not UTF-8 text";
      try {
        JSON.parse(text);
        return undefined;
      } catch (err) {
        return `the content is not JSON: ${(err as Error).message}`;
      }
    }
    case "application/yaml": {
      const text = utf8Text(bytes);
      if (text === undefined) return "the content is not UTF-8 text";
      try {
        parse(text);
        return undefined;
      } catch (err) {
        return `the content is not YAML: ${(err as Error).message.split("\n")[0] ?? ""}`;
      }
    }
    default:
      return `unsupported MIME type ${mimeType}; use one of ${artifactMimeTypes.join(", ")}`;
  }
}
