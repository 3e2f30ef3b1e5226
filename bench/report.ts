// Benchmark results: one JSON file per benchmark in bench/results/, and a Markdown table
// per benchmark kept between markers in docs/benchmarks.md.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface Metric {
  name: string;
  value: number;
  unit: string;
  /** What the value is compared with, measured in the same run. */
  baseline?: { name: string; value: number };
  /** value / baseline.value */
  ratio?: number;
  /** The goal, as text (e.g. "≤ 15 s"). */
  goal?: string;
}

export interface BenchmarkResult {
  benchmark: string;
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  metrics: Metric[];
  notes?: string[];
}

export function metric(
  name: string,
  value: number,
  unit: string,
  extra: { baseline?: { name: string; value: number }; goal?: string } = {},
): Metric {
  const m: Metric = { name, value: round(value), unit, ...extra };
  if (extra.baseline && extra.baseline.value > 0) {
    m.baseline = { name: extra.baseline.name, value: round(extra.baseline.value) };
    m.ratio = round(value / extra.baseline.value);
  }
  return m;
}

const round = (v: number): number => Math.round(v * 100) / 100;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function machine(): BenchmarkResult["machine"] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function table(result: BenchmarkResult): string {
  const rows = result.metrics.map((m) => {
    const baseline = m.baseline ? `${m.baseline.value} (${m.baseline.name})` : "";
    return `| ${m.name} | ${m.value} ${m.unit} | ${baseline} | ${m.ratio ?? ""} | ${m.goal ?? ""} |`;
  });
  return [
    `Measured ${result.date} on ${result.machine.cpus} × ${result.machine.cpuModel}, ${result.machine.memoryGiB} GiB, Node ${result.machine.node}.`,
    "",
    "| metric | value | baseline (same run) | ratio | goal |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    ...(result.notes?.length ? ["", ...result.notes.map((n) => `- ${n}`)] : []),
  ].join("\n");
}

/** Writes bench/results/<name>.json and replaces the benchmark's section of docs/benchmarks.md. */
export function publish(result: BenchmarkResult): void {
  const resultsDir = join(root, "bench", "results");
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${result.benchmark}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const doc = join(root, "docs", "benchmarks.md");
  const start = `<!-- bench:${result.benchmark}:start -->`;
  const end = `<!-- bench:${result.benchmark}:end -->`;
  const section = `${start}\n${table(result)}\n${end}`;
  const text = existsSync(doc) ? readFileSync(doc, "utf8") : "# Benchmarks\n";
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  const updated =
    i >= 0 && j > i
      ? text.slice(0, i) + section + text.slice(j + end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(doc, updated);
  console.log(table(result));
}
