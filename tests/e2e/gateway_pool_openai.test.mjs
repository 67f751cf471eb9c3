// The official `openai` npm client, unmodified, against a gateway with two tlab-sim workers: the
// worker serving a stream is killed (SIGKILL) midway, and the client must see one clean stream,
// identical in text, finish reason and usage to the same request answered without a failure.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
const model = 'Qwen/Qwen2.5-0.5B-Instruct';
const pids = Object.fromEntries(process.env.TLAB_WORKER_PIDS.split(',').map((s) => s.split(':')));

async function busyWorker() {
  const r = await fetch(`${process.env.TLAB_ADMIN_URL}/workers`);
  const { workers } = await r.json();
  return workers.find((w) => w.in_flight > 0)?.name;
}

async function collect(params, onChunk) {
  const stream = await client.chat.completions.create(params);
  const out = { text: '', roles: 0, finish: null, usage: null, chunks: 0 };
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    out.chunks++;
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta?.role) out.roles++;
      if (c.delta?.content) out.text += c.delta.content;
      if (c.finish_reason) out.finish = c.finish_reason;
    }
    if (onChunk) await onChunk(out);
  }
  return out;
}

test('a stream whose worker is killed midway reaches the client whole', async () => {
  const params = {
    model, messages: [{ role: 'user', content: 'Tell me a long story about the sea.' }], max_tokens: 150, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  };
  const reference = await collect(params);
  assert.ok(reference.text.length > 0 && reference.usage);
  let killed = null;
  const spliced = await collect(params, async (o) => {
    if (!killed && o.chunks === 20) {
      killed = await busyWorker();
      assert.ok(killed, 'a worker has the stream in flight');
      process.kill(Number(pids[killed]), 'SIGKILL');
    }
  });
  assert.ok(killed, 'the serving worker was killed midway');
  assert.equal(spliced.roles, 1, 'one role chunk');
  assert.equal(spliced.text, reference.text, 'no text lost or repeated');
  assert.equal(spliced.finish, reference.finish);
  assert.deepEqual(spliced.usage, reference.usage, 'usage totals add up');
});
