// Minimal HTTP(S) GET for readiness probes, with client certificates.
import { request as httpsRequest } from "node:https";
import { request as httpRequest, type IncomingMessage } from "node:http";

export interface Response {
  status: number;
  body: string;
}

export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
}

function collect(res: IncomingMessage): Promise<Response> {
  return new Promise((resolve, reject) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => (body += chunk));
    res.on("end", () => {
      resolve({ status: res.statusCode ?? 0, body });
    });
    res.on("error", reject);
  });
}

export function httpsGet(url: string, tls: TlsOptions, timeoutMs = 2000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure, timeout: timeoutMs },
      (res) => {
        collect(res).then(resolve, reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    req.on("error", reject);
    req.end();
  });
}

export function httpGet(url: string, timeoutMs = 2000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { timeout: timeoutMs }, (res) => {
      collect(res).then(resolve, reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    req.on("error", reject);
    req.end();
  });
}

export function httpPost(url: string, body: unknown, timeoutMs = 5000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: "POST", timeout: timeoutMs, headers: { "content-type": "application/json" } },
      (res) => {
        collect(res).then(resolve, reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}
