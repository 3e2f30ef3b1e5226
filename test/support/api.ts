// Assertions on the API server's validation of Outpost objects.
import assert from "node:assert/strict";
import {
  ApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from "../../operators/runtime/client.ts";

/**
 * Sends `obj` (create, or replace with `update`) and asserts the API server refuses it
 * with 422 and a message containing `message`.
 */
export async function rejected(
  client: KubeClient,
  r: ResourceType,
  obj: KubeObject,
  message: string | RegExp,
  update = false,
): Promise<void> {
  try {
    if (update) await client.replace(r, obj);
    else await client.create(r, obj);
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, 422, err.message);
    if (typeof message === "string")
      assert.ok(err.message.includes(message), `"${err.message}" lacks "${message}"`);
    else assert.match(err.message, message);
    return;
  }
  assert.fail(`${r.kind} ${obj.metadata.name ?? ""} was accepted; expected: ${String(message)}`);
}
