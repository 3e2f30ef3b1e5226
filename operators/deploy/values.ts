// Helm values: deep merge with Helm's semantics (maps merge key by key, anything else
// replaces, null deletes a key), dotted-path assignment, and typed parameter parsing.

export type Values = Record<string, unknown>;

/** A Helm values map (not a list, not a scalar). */
export const isMap = (v: unknown): v is Values => typeof v === "object" && v !== null && !Array.isArray(v);

/** `over` merged onto `base` (neither is changed). */
export function mergeValues(base: Values, over: Values): Values {
  const out = new Map(Object.entries(base));
  for (const [key, value] of Object.entries(over)) {
    const current = out.get(key);
    if (value === null) out.delete(key);
    else if (isMap(value) && isMap(current)) out.set(key, mergeValues(current, value));
    else out.set(key, structuredClone(value));
  }
  return Object.fromEntries(out);
}

/** Sets `value` at dotted `path` (image.tag), creating maps on the way. */
export function setPath(values: Values, path: string, value: unknown): Values {
  const keys = path.split(".");
  const out: Values = { ...values };
  let cur = out;
  for (const [i, key] of keys.entries()) {
    if (i === keys.length - 1) {
      cur[key] = value;
    } else {
      const next = cur[key];
      cur[key] = isMap(next) ? { ...next } : {};
      cur = cur[key] as Values;
    }
  }
  return out;
}

/** A parameter's text as its declared type; undefined with a reason when it does not parse. */
export function parseParameter(
  type: "string" | "number" | "boolean",
  text: string,
): { value: string | number | boolean } | { error: string } {
  if (type === "string") return { value: text };
  if (type === "boolean") {
    if (text === "true" || text === "false") return { value: text === "true" };
    return { error: `"${text}" is not a boolean (true or false)` };
  }
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) return { error: `"${text}" is not a number` };
  return { value: n };
}
