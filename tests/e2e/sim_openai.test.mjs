// sim_openai.test.mjs - the official `openai` npm client against tlab-sim directly: chat (non-stream
// and stream with usage) and completions. Needs OPENAI_BASE_URL (e.g. http://127.0.0.1:PORT/v1).
// Run: node --test tests/e2e/sim_openai.test.mjs   (tests/e2e/run_with_servers.py starts the sim)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.OPENAI_BASE_URL;
const model = process.env.TLAB_SIM_MODEL || 'Qwen/Qwen2.5-0.5B-Instruct';
assert.ok(baseURL, 'OPENAI_BASE_URL is not set');
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 20000 });

test('models.list names the served model', async () => {
  const page = await client.models.list();
  assert.deepEqual(page.data.map((m) => m.id), [model]);
});

test('chat, non-streaming', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8, temperature: 0, ignore_eos: true,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.prompt_tokens, 3); // "Say hello." is 10 bytes -> ceil(10 / 4)
  assert.equal(r.choices[0].message.content.length, 32);
});

test('chat, streaming with usage', async () => {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8, temperature: 0, ignore_eos: true,
    stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(chunks, 10); // role chunk + 8 tokens + usage chunk
  assert.equal(finish, 'length');
  assert.deepEqual(usage, { prompt_tokens: 3, total_tokens: 11, completion_tokens: 8 });
  const again = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8, temperature: 0, ignore_eos: true,
  });
  assert.equal(text, again.choices[0].message.content, 'streamed text equals non-streamed text');
});

test('completions with a string and with token ids, and a streamed completion', async () => {
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.prompt_tokens, 4);
  assert.equal(r.choices[0].text.length, 20);
  const ids = await client.completions.create({ model, prompt: [1, 2, 3, 4, 5, 6, 7], max_tokens: 2 });
  assert.equal(ids.usage.prompt_tokens, 7);
  const stream = await client.completions.create({ model, prompt: 'abc', max_tokens: 4, stream: true, ignore_eos: true });
  let n = 0;
  for await (const chunk of stream) n += chunk.choices.length;
  assert.equal(n, 4);
});

test('a context overflow is a 400 BadRequestError with vLLM\'s message', async () => {
  await assert.rejects(
    client.completions.create({ model, prompt: 'x', max_tokens: 1000000 }),
    (err) => err.status === 400 && /maximum context length is/.test(err.message),
  );
});
