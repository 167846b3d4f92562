// The HTTP contract as a TypeScript host (BooCoder, BooChat) uses it: plain Node.js, `node --test`, no npm package.
// Run by tests/test_node_contract.py, which starts `serve` on a fleet of hosts on 127.0.0.1 and gives:
//   BRIDGE_URL   the server's URL
//   BRIDGE_CLI   the CLI on the same registry and state dir, as a JSON argv (a second process, like opencode's TUI)
//   MARKER       a word only the dispatched prompt holds (the Python side then asks the hosts who received it)
// The fleet: sam (default; coder with a 65536 window, unsloth/Qwen3:Q4_K_M), emb (coder, tiny-llama),
// down (offline), deepseek (disabled).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";

const BASE = process.env.BRIDGE_URL;
const CLI = JSON.parse(process.env.BRIDGE_CLI ?? "[]");
const MARKER = process.env.MARKER;
const PURPOSES = ["dispatch", "arena", "compaction", "task", "context"];

async function api(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text), text };
}

const get = (path, params = {}) => api("GET", `${path}?${new URLSearchParams(params)}`);

async function cliFavorites() {
  const { stdout } = await promisify(execFile)(CLI[0], [...CLI.slice(1), "favorites", "list", "--json"]);
  return JSON.parse(stdout);
}

function refusedWith(answer, status, ...words) {
  assert.equal(answer.status, status, answer.text);
  assert.deepEqual(Object.keys(answer.body), ["error"]);
  assert.ok(!answer.body.error.includes("\n"), "one line");
  for (const word of words) assert.ok(answer.body.error.includes(word), `${word} in ${answer.body.error}`);
}

test("the catalog: favorites first, then one group per provider, with status and windows", async () => {
  const { status, body } = await get("/api/models");
  assert.equal(status, 200);
  assert.deepEqual(body.providers.map((g) => g.id), ["sam", "emb", "down", "deepseek"]);
  const groups = Object.fromEntries(body.providers.map((g) => [g.id, g]));
  assert.equal(groups.down.status, "offline");
  assert.equal(groups.deepseek.status, "disabled");
  const coder = groups.sam.models.find((m) => m.id === "sam/coder");
  assert.equal(coder.context_window, 65536);
  assert.ok(groups.emb.models.some((m) => m.id === "emb/tiny-llama"));
});

test("a legacy bare ID resolves to the default provider, composite", async () => {
  const { status, body } = await get("/api/resolve", { model: "coder" });
  assert.equal(status, 200);
  assert.equal(body.id, "sam/coder");
  assert.equal(body.legacy, true);
  assert.equal(body.context_window, 65536);
  assert.equal(body.opencode_model, "sam/coder");
});

test("star and unstar over HTTP, seen by a CLI process; a favorite whose host is down is hidden, not lost",
  async () => {
    const starred = await api("PUT", `/api/favorites/${encodeURIComponent("emb/tiny-llama")}`);
    assert.equal(starred.status, 200);
    assert.ok(starred.body.favorites.includes("emb/tiny-llama"));
    assert.ok((await cliFavorites()).favorites.includes("emb/tiny-llama"));
    const catalog = (await get("/api/models")).body;
    assert.equal(catalog.favorites[0].id, "emb/tiny-llama");

    await api("PUT", "/api/favorites/down/ghost");
    const listed = await cliFavorites();
    assert.ok(listed.favorites.includes("down/ghost"));
    assert.match(listed.hidden["down/ghost"], /offline/);
    assert.ok(!(await get("/api/models")).body.favorites.some((m) => m.id === "down/ghost"));

    for (const id of ["emb/tiny-llama", "down/ghost"]) {
      const unstarred = await api("DELETE", `/api/favorites/${encodeURIComponent(id)}`);
      assert.equal(unstarred.status, 200);
      assert.ok(!unstarred.body.favorites.includes(id));
    }
    assert.deepEqual((await cliFavorites()).favorites, []);
  });

test("resolve for each purpose: one route, and whether its provider can take a request now", async () => {
  for (const purpose of PURPOSES) {
    const { status, body } = await get("/api/resolve", { model: "emb/tiny-llama", purpose });
    assert.equal(status, 200, purpose);
    assert.equal(body.id, "emb/tiny-llama");
    assert.equal(body.available, true);
    assert.equal(body.provider_status, "online");
  }
  const down = await get("/api/resolve", { model: "down/ghost" });
  assert.equal(down.status, 200);
  assert.equal(down.body.available, false);
  assert.equal(down.body.provider_status, "offline");
});

test("a dispatch plan starts the real opencode, and the prompt reaches the right host", async () => {
  // The host's own OPENCODE_CONFIG_CONTENT points emb elsewhere: the fleet's entry must win over it.
  const own = { share: "disabled", provider: { emb: { options: { baseURL: "http://127.0.0.1:9/v1" } } } };
  const plan = await api("POST", "/api/dispatch", {
    model: "emb/coder", prompt: ["say", MARKER], mode: "run", opencode_config_content: JSON.stringify(own),
  });
  assert.equal(plan.status, 200, plan.text);
  assert.equal(plan.body.route.id, "emb/coder");
  assert.deepEqual(plan.body.argv.slice(1), ["run", "-m", "emb/coder", "--", "say", MARKER]);
  assert.ok(Array.isArray(plan.body.warnings));
  const content = JSON.parse(plan.body.env.OPENCODE_CONFIG_CONTENT);
  assert.equal(content.share, "disabled"); // the host's own settings are kept
  assert.notEqual(content.provider.emb.options.baseURL, "http://127.0.0.1:9/v1");

  const child = spawn(plan.body.argv[0], plan.body.argv.slice(1), {
    env: { ...process.env, ...plan.body.env }, stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk) => { out += chunk; });
  child.stderr.on("data", (chunk) => { err += chunk; });
  const code = await new Promise((resolve) => child.on("close", resolve));
  assert.equal(code, 0, err.slice(-2000));
  assert.ok(out.includes("reply from emb model coder"), out + err.slice(-2000));

  const acp = await api("POST", "/api/dispatch", { model: "sam/coder", mode: "acp" });
  assert.equal(acp.status, 200, acp.text);
  assert.deepEqual(acp.body.argv.slice(1), ["acp"]);
  assert.equal(JSON.parse(acp.body.env.OPENCODE_CONFIG_CONTENT).model, "sam/coder");
});

test("an arena plan: one dispatch plan per contestant, ready for the prompt after '--'", async () => {
  const { status, body } = await api("POST", "/api/arena", { models: ["sam/coder", "emb/coder"] });
  assert.equal(status, 200);
  assert.deepEqual(body.contestants.map((c) => c.route.id), ["sam/coder", "emb/coder"]);
  for (const contestant of body.contestants) {
    assert.equal(contestant.argv.at(-1), "--");
    assert.equal(contestant.env.OPENCODE_CONFIG, body.config_path);
  }
  assert.equal(typeof body.notes, "object");
  refusedWith(await api("POST", "/api/arena", { models: ["sam/coder"] }), 422, "two contestants");
});

test("the compaction and task models, with the session's window", async () => {
  const own = await get("/api/compaction", { session: "coder" });
  assert.equal(own.status, 200);
  assert.equal(own.body.model.id, "sam/coder");
  assert.equal(own.body.session.id, "sam/coder");
  assert.equal(own.body.context_window, 65536);
  const configured = await get("/api/compaction", { session: "sam/coder", configured: "emb/coder" });
  assert.equal(configured.body.model.id, "emb/coder");
  assert.equal(configured.body.context_window, 65536);
  const task = await get("/api/task-model", { kind: "title", session: "emb/tiny-llama" });
  assert.equal(task.status, 200);
  assert.equal(task.body.id, "emb/tiny-llama");
});

test("refusals as the CLI's: a typo, a provider typo, a disabled and an offline provider", async () => {
  refusedWith(await get("/api/resolve", { model: "emb/tiny-lama" }), 422, "did you mean emb/tiny-llama");
  refusedWith(await get("/api/resolve", { model: "emd/tiny-llama" }), 422, "did you mean emb/tiny-llama");
  refusedWith(await api("POST", "/api/dispatch", { model: "emb/tiny-lama", prompt: ["x"] }), 422,
    "did you mean emb/tiny-llama");
  refusedWith(await api("POST", "/api/dispatch", { model: "down/ghost", prompt: ["x"] }), 503, "down", "offline");
  refusedWith(await api("POST", "/api/arena", { models: ["sam/coder", "down/ghost"] }), 503, "down");
  refusedWith(await api("POST", "/api/dispatch", { model: "deepseek-chat" }), 409, "deepseek", "disabled");
});

test("the OpenAPI document names every operation for a generated client", async () => {
  const { body } = await get("/openapi.json");
  const ids = Object.values(body.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
  for (const id of ["listModels", "putFavorite", "deleteFavorite", "dispatch", "arena", "compaction", "taskModel",
    "resolve", "listProviders", "events", "health"]) {
    assert.ok(ids.includes(id), id);
  }
});
