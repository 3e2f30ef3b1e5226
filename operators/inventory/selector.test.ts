import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { conjoin, firstMatchPieces, matches, type LabelSelector, type Requirement } from "./selector.ts";

const keys = ["ring", "tier", "region"];
const values = ["a", "b", "c"];

const requirement: fc.Arbitrary<Requirement> = fc.oneof(
  fc.record({
    key: fc.constantFrom(...keys),
    operator: fc.constantFrom("In" as const, "NotIn" as const),
    values: fc.uniqueArray(fc.constantFrom(...values), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    key: fc.constantFrom(...keys),
    operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const),
  }),
);
const selector: fc.Arbitrary<LabelSelector> = fc.record(
  {
    matchLabels: fc.dictionary(fc.constantFrom(...keys), fc.constantFrom(...values), { maxKeys: 2 }),
    matchExpressions: fc.array(requirement, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const labels = fc.dictionary(fc.constantFrom(...keys), fc.constantFrom(...values, "d"), { maxKeys: 3 });

describe("firstMatchPieces", () => {
  it("puts every label set in exactly one piece: its first matching selector's, else the last", () => {
    fc.assert(
      fc.property(
        fc.array(selector, { minLength: 1, maxLength: 4 }),
        fc.array(labels, { maxLength: 20 }),
        (waves, sets) => {
          const pieces = firstMatchPieces(waves, 10_000) ?? [];
          assert.ok(pieces.length > 0);
          for (const l of sets) {
            const first = waves.findIndex((w) => matches(w, l));
            const expected = first === -1 ? waves.length : first;
            const met: { index: number }[] = pieces.filter((p) => matches(p.selector, l));
            assert.equal(met.length, 1, `labels ${JSON.stringify(l)} meet ${met.length} pieces`);
            assert.equal(met[0]?.index, expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("keeps one piece per wave of single labels, and excludes the waves from the rest", () => {
    assert.deepEqual(firstMatchPieces([{ matchLabels: { ring: "0" } }, { matchLabels: { ring: "1" } }], 50), [
      { index: 0, selector: { matchLabels: { ring: "0" } } },
      { index: 1, selector: { matchLabels: { ring: "1" } } },
      { index: 2, selector: { matchExpressions: [{ key: "ring", operator: "NotIn", values: ["0", "1"] }] } },
    ]);
  });

  it("splits what a wave of several labels leaves into disjoint pieces", () => {
    assert.deepEqual(firstMatchPieces([{ matchLabels: { tier: "store", region: "eu" } }], 50), [
      { index: 0, selector: { matchLabels: { tier: "store", region: "eu" } } },
      // Not a store, or a store outside eu.
      { index: 1, selector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["store"] }] } },
      {
        index: 1,
        selector: {
          matchLabels: { tier: "store" },
          matchExpressions: [{ key: "region", operator: "NotIn", values: ["eu"] }],
        },
      },
    ]);
  });

  it("has no last piece when a wave selects every cluster", () => {
    assert.deepEqual(firstMatchPieces([{}, { matchLabels: { ring: "1" } }], 50), [
      { index: 0, selector: {} },
    ]);
  });

  it("gives up past the limit", () => {
    const wide = (k: string): LabelSelector => ({
      matchLabels: { [`${k}1`]: "x", [`${k}2`]: "x", [`${k}3`]: "x" },
    });
    assert.equal(firstMatchPieces([wide("a"), wide("b"), wide("c"), wide("d")], 50), undefined);
  });
});

describe("conjoin", () => {
  it("finds contradictions and merges requirements on one key", () => {
    assert.equal(
      conjoin([
        { key: "k", operator: "Exists" },
        { key: "k", operator: "DoesNotExist" },
      ]),
      null,
    );
    assert.equal(
      conjoin([
        { key: "k", operator: "In", values: ["a"] },
        { key: "k", operator: "NotIn", values: ["a"] },
      ]),
      null,
    );
    assert.deepEqual(
      conjoin([
        { key: "k", operator: "In", values: ["a", "b", "c"] },
        { key: "k", operator: "NotIn", values: ["b"] },
        { key: "k", operator: "Exists" },
      ]),
      [{ key: "k", operator: "In", values: ["a", "c"] }],
    );
  });
});
