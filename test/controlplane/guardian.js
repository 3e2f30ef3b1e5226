// Guardian: makes sure no control-plane process outlives the program that started it.
// The parent writes "+<pgid>" / "-<pgid>" lines on our stdin as it starts and stops
// process groups. When stdin closes - the parent exited, crashed or was killed with
// SIGKILL - every group still registered gets SIGTERM, then SIGKILL after a grace period.
import process from "node:process";
import { setInterval, clearInterval } from "node:timers";

const groups = new Set();
let buffered = "";

// Signals meant for the parent's terminal must not stop the cleanup.
process.on("SIGINT", () => undefined);
process.on("SIGHUP", () => undefined);
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  const lines = buffered.split("\n");
  buffered = lines.pop() ?? "";
  for (const line of lines) {
    const pgid = Number(line.slice(1));
    if (!Number.isInteger(pgid) || pgid <= 1) continue;
    if (line.startsWith("+")) groups.add(pgid);
    else if (line.startsWith("-")) groups.delete(pgid);
  }
});

function signal(sig) {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, sig);
    } catch {
      groups.delete(pgid);
    }
  }
}

process.stdin.on("close", () => {
  signal("SIGTERM");
  const deadline = Date.now() + 5000;
  const timer = setInterval(() => {
    signal(0);
    if (groups.size === 0 || Date.now() > deadline) {
      signal("SIGKILL");
      clearInterval(timer);
      process.exit(0);
    }
  }, 100);
});
