// openai.mjs: cinder serve driven by the official `openai` npm package.
// usage: node openai.mjs BASE_URL [KEYED_BASE_URL KEY]
// BASE_URL is an open server (e.g. http://127.0.0.1:8080/v1); KEYED_BASE_URL one started with
// --api-key KEY. Exits non-zero on the first failed check.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, keyedURL, key] = process.argv.slice(2);
if (!baseURL) {
  console.error("usage: node openai.mjs BASE_URL [KEYED_BASE_URL KEY]");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const MODEL = "stories260K";
const messages = [{ role: "user", content: "Tell me a story about a cat" }];
let n = 0;
const ok = (what) => {
  n++;
  console.log(`ok   ${what}`);
};

async function expectError(promise, cls, status, check) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, status);
    if (check) check(err);
    return err;
  }
  assert.fail(`expected ${cls.name}`);
}

// models
const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
const model = await client.models.retrieve(MODEL);
assert.equal(model.id, MODEL);
assert.equal(model.max_model_len, 2048);
ok("models.list / models.retrieve");

// chat, not streamed
const full = await client.chat.completions.create({
  model: MODEL, messages, temperature: 0, max_tokens: 32,
});
assert.equal(full.object, "chat.completion");
assert.equal(full.choices.length, 1);
assert.equal(full.choices[0].message.role, "assistant");
assert.ok(full.choices[0].message.content.length > 0);
assert.ok(["stop", "length"].includes(full.choices[0].finish_reason));
assert.equal(full.usage.total_tokens, full.usage.prompt_tokens + full.usage.completion_tokens);
ok("chat.completions.create");

// with_raw_response: the request id header
const { response: raw } = await client.chat.completions
  .create({ model: MODEL, messages, max_tokens: 2 }, { headers: { "x-request-id": "sdk-req-1" } })
  .withResponse();
assert.equal(raw.headers.get("x-request-id"), "sdk-req-1");
ok("x-request-id through the SDK");

// chat, streamed: same greedy text, usage chunk at the end
const stream = await client.chat.completions.create({
  model: MODEL, messages, temperature: 0, max_tokens: 32, stream: true,
  stream_options: { include_usage: true },
});
let text = "", finish = null, usage = null, chunks = 0, sawRole = false;
for await (const chunk of stream) {
  chunks++;
  assert.equal(chunk.object, "chat.completion.chunk");
  if (chunk.usage) {
    assert.equal(chunk.choices.length, 0);
    usage = chunk.usage;
    continue;
  }
  const c = chunk.choices[0];
  if (c.delta.role) sawRole = true;
  text += c.delta.content ?? "";
  if (c.finish_reason) finish = c.finish_reason;
}
assert.ok(sawRole);
assert.equal(text, full.choices[0].message.content);
assert.equal(finish, full.choices[0].finish_reason);
assert.equal(usage.prompt_tokens, full.usage.prompt_tokens);
assert.equal(usage.completion_tokens, full.usage.completion_tokens);
assert.equal(usage.total_tokens, full.usage.total_tokens);
ok(`streamed chat == non-streamed (${chunks} chunks, usage chunk)`);

// the SDK's accumulating stream helper
const helper = client.chat.completions.stream({
  model: MODEL, messages, temperature: 0, max_tokens: 32,
  stream_options: { include_usage: true },
});
let deltas = "";
helper.on("content", (delta) => { deltas += delta; });
const final = await helper.finalChatCompletion();
assert.equal(final.choices[0].message.content, full.choices[0].message.content);
assert.equal(deltas, full.choices[0].message.content);
assert.equal(final.choices[0].finish_reason, full.choices[0].finish_reason);
assert.equal(final.usage.completion_tokens, full.usage.completion_tokens);
ok("chat.completions.stream(...) helper: finalChatCompletion and content events");

// legacy completions, streamed and not
const comp = await client.completions.create({
  model: MODEL, prompt: "Once upon a time", temperature: 0, max_tokens: 24,
});
assert.equal(comp.object, "text_completion");
assert.equal(comp.usage.completion_tokens, 24);
let ctext = "";
for await (const chunk of await client.completions.create({
  model: MODEL, prompt: "Once upon a time", temperature: 0, max_tokens: 24, stream: true,
})) {
  ctext += chunk.choices[0]?.text ?? "";
}
assert.equal(ctext, comp.choices[0].text);
ok("completions.create (streamed == not streamed)");

// stop strings
const words = comp.choices[0].text.split(" ").filter((w) => w.length > 0);
const stopWord = " " + words[Math.floor(words.length / 2)];
const stopped = await client.completions.create({
  model: MODEL, prompt: "Once upon a time", temperature: 0, max_tokens: 24, stop: [stopWord],
});
assert.equal(stopped.choices[0].finish_reason, "stop");
assert.equal(stopped.choices[0].text, comp.choices[0].text.slice(0, comp.choices[0].text.indexOf(stopWord)));
ok("stop strings");

// logprobs
const lp = await client.chat.completions.create({
  model: MODEL, messages, temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 2,
});
assert.equal(lp.choices[0].logprobs.content.length, lp.usage.completion_tokens);
for (const t of lp.choices[0].logprobs.content) {
  assert.equal(t.top_logprobs.length, 2);
  assert.ok(t.logprob <= 0);
}
assert.equal(lp.choices[0].logprobs.content.map((t) => t.token).join("").trimStart(),
  lp.choices[0].message.content.trimStart());
ok("logprobs with top_logprobs");

// seeds
const seeded = () => client.chat.completions.create({
  model: MODEL, messages, temperature: 1, seed: 7, max_tokens: 24,
});
const [s1, s2] = await Promise.all([seeded(), seeded()]);
assert.equal(s1.choices[0].message.content, s2.choices[0].message.content);
ok("seed reproducibility (concurrently)");

// errors as the SDK sees them
await expectError(client.chat.completions.create({ model: "gpt-4o", messages }),
  OpenAI.NotFoundError, 404, (e) => assert.equal(e.code, "model_not_found"));
await expectError(client.chat.completions.create({ model: MODEL, messages, max_tokens: 5000 }),
  OpenAI.BadRequestError, 400, (e) => assert.equal(e.code, "context_length_exceeded"));
await expectError(client.chat.completions.create({ model: MODEL, messages, temperature: 9 }),
  OpenAI.BadRequestError, 400, (e) => assert.equal(e.param, "temperature"));
await expectError(client.chat.completions.create({ model: MODEL, messages: "hi" }),
  OpenAI.BadRequestError, 400);
await expectError(client.models.retrieve("nope"), OpenAI.NotFoundError, 404);
ok("errors: NotFoundError, BadRequestError (context_length_exceeded, param)");

// eight clients at once, mixed streaming
const many = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
  if (i % 2) {
    let t = "";
    for await (const ch of await client.chat.completions.create({
      model: MODEL, messages: [{ role: "user", content: `story ${i}` }], max_tokens: 40, stream: true,
    })) t += ch.choices[0]?.delta?.content ?? "";
    return t;
  }
  const r = await client.completions.create({ model: MODEL, prompt: `Tom had a ${i}`, max_tokens: 40 });
  return r.choices[0].text;
}));
assert.equal(many.length, 8);
ok("8 concurrent SDK clients");

// API keys
if (keyedURL) {
  const anon = new OpenAI({ baseURL: keyedURL, apiKey: "wrong-key", maxRetries: 0 });
  await expectError(anon.models.list(), OpenAI.AuthenticationError, 401);
  await expectError(anon.chat.completions.create({ model: MODEL, messages, max_tokens: 2 }),
    OpenAI.AuthenticationError, 401, (e) => assert.equal(e.type, "authentication_error"));
  const keyed = new OpenAI({ baseURL: keyedURL, apiKey: key, maxRetries: 0 });
  const r = await keyed.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
  assert.equal(r.usage.completion_tokens, 4);
  ok("API key: AuthenticationError without it, success with it");
}

console.log(`openai.mjs: ${n} checks passed`);
