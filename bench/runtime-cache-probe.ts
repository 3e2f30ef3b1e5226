// Prints the RSS (MiB) of this process once one informer has cached every Sample.
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient, type KubeObject } from "../operators/runtime/client.ts";
import { Informer } from "../operators/runtime/informer.ts";
import { samples } from "../test/fixtures/sample-operator.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();
const client = new KubeClient(kubeConfig);
const informer = new Informer<KubeObject>(client, samples);
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const empty = process.memoryUsage().rss;
await informer.start();
const expected = Number(process.env.EXPECTED ?? "0");
if (informer.cache.size !== expected) {
  console.error(`cached ${informer.cache.size} objects, expected ${expected}`);
  process.exit(1);
}
// Measure what the cache keeps, not garbage from the list pages.
(globalThis as { gc?: () => void }).gc?.();
await new Promise((r) => setTimeout(r, 1000));
console.log(`${mib(process.memoryUsage().rss)} ${mib(empty)}`);
await informer.stop();
await client.close();
process.exit(0);
