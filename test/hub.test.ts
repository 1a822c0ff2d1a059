// Hub download against a local HTTP server started here that serves the hub's layout for stories260K:
// `/api/models/<repo>/revision/<rev>` (info: sha, siblings) and `/<repo>/resolve/<rev>/<file>` (with Range support).
import { createReadStream, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadModel, HubError } from "../lib/model/hub.js";
import { LlamaModel } from "../lib/model/model.js";
import { sharedPath } from "../lib/model/shared.js";

const REPO = "karpathy/stories260K";
const SHA = "0123456789abcdef0123456789abcdef01234567";
const src = sharedPath("data", "models", "stories260K");
const requests: string[] = [];
let server: http.Server;
let endpoint: string;

beforeAll(async () => {
  const files = readdirSync(src).filter((f) => f !== "PROVENANCE.txt");
  server = http.createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === `/api/models/${REPO}/revision/main` || url.pathname === `/api/models/${REPO}/revision/${SHA}`) {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ _id: "x", id: REPO, sha: SHA, private: false, siblings: [...files, "README.md"].map((rfilename) => ({ rfilename })) }));
      return;
    }
    const m = new RegExp(`^/${REPO}/resolve/([^/]+)/(.+)$`).exec(url.pathname);
    if (m && files.includes(m[2])) {
      const f = path.join(src, m[2]);
      const size = statSync(f).size;
      res.setHeader("ETag", `"${size}"`);
      res.setHeader("Accept-Ranges", "bytes");
      const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? "");
      if (range) {
        const a = Number(range[1]), b = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
        res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${size}`, "Content-Length": b - a + 1 });
        createReadStream(f, { start: a, end: b }).pipe(res);
      } else {
        res.writeHead(200, { "Content-Length": size });
        createReadStream(f).pipe(res);
      }
      return;
    }
    res.writeHead(404, { "X-Error-Code": "EntryNotFound", "Content-Type": "application/json" });
    res.end(JSON.stringify({ error: "not found" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

describe("hub download", () => {
  it("downloads a model into the cache and loads it; a second call reads nothing again", async () => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), "qe-hub-"));
    const got: string[] = [];
    const dir = await downloadModel(REPO, { endpoint, cacheDir, onFile: (f) => got.push(f) });
    expect(dir).toBe(path.join(cacheDir, "models--karpathy--stories260K", "snapshots", SHA));
    expect(got.sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    expect(readFileSync(path.join(dir, "model.safetensors")).equals(readFileSync(path.join(src, "model.safetensors")))).toBe(true);
    expect(readFileSync(path.join(cacheDir, "models--karpathy--stories260K", "refs", "main"), "utf8")).toBe(SHA);
    const m = await LlamaModel.fromDir(dir);
    expect(m.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    const again: string[] = [];
    await downloadModel(REPO, { endpoint, cacheDir, onFile: (f) => again.push(f) });
    expect(again).toEqual([]);
    expect(requests.some((r) => r.startsWith("GET /api/models/karpathy/stories260K"))).toBe(true);
  });

  it("uses HF_ENDPOINT and QUANTEVAL_CACHE when no options are given", async () => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), "qe-hub-"));
    process.env.HF_ENDPOINT = endpoint;
    process.env.QUANTEVAL_CACHE = cacheDir;
    try {
      const dir = await downloadModel(REPO);
      expect(dir.startsWith(cacheDir)).toBe(true);
    } finally {
      delete process.env.HF_ENDPOINT;
      delete process.env.QUANTEVAL_CACHE;
    }
  });

  it("names the repo and endpoint when the model does not exist", async () => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), "qe-hub-"));
    await expect(downloadModel("nobody/nothing", { endpoint, cacheDir })).rejects.toThrow(HubError);
    await expect(downloadModel("nobody/nothing", { endpoint, cacheDir })).rejects.toThrow(/cannot get info of model 'nobody\/nothing'/);
    await expect(downloadModel("not a repo", { endpoint, cacheDir })).rejects.toThrow(/expected 'owner\/name'/);
  });
});
