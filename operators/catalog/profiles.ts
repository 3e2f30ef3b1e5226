// Checks an Application's profiles against its chart's default values: every parameter
// names a value the chart has (unless the chart ships a values schema, which Helm then
// enforces) and its type matches the chart's default.
import type { Application } from "../api/application.generated.ts";
import { lookup } from "./chart.ts";

type Profile = NonNullable<Application["spec"]["profiles"]>[number];

function kindOf(value: unknown): "string" | "number" | "boolean" | "other" {
  if (typeof value === "string") return "string";
  if (typeof value === "number") return "number";
  if (typeof value === "boolean") return "boolean";
  return "other";
}

/** Problems, one sentence each; empty when the profiles fit the chart. */
export function checkProfiles(
  profiles: Profile[],
  chartValues: Record<string, unknown>,
  hasSchema: boolean,
): string[] {
  const problems: string[] = [];
  for (const profile of profiles) {
    for (const p of profile.parameters ?? []) {
      const inProfile = lookup(profile.values ?? {}, p.name);
      const inChart = lookup(chartValues, p.name);
      const existing = inProfile.found ? inProfile : inChart;
      if (!existing.found) {
        if (!hasSchema) {
          problems.push(
            `profile ${profile.name}: parameter ${p.name} is not a value of the chart (not in its values.yaml nor in the profile's values)`,
          );
        }
        continue;
      }
      const kind = kindOf(existing.value);
      if (existing.value !== null && kind !== "other" && kind !== p.type) {
        problems.push(
          `profile ${profile.name}: parameter ${p.name} is declared ${p.type} but the chart's value is a ${kind} (${JSON.stringify(existing.value)})`,
        );
      }
      if (kind === "other" && existing.value !== null) {
        problems.push(
          `profile ${profile.name}: parameter ${p.name} points at a map or list, not a single value`,
        );
      }
    }
  }
  return problems;
}
