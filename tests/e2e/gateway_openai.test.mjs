// The official `openai` npm client, unmodified, against the endpoint in OPENAI_BASE_URL
// (tlab-gateway in front of tlab-sim, or tlab-sim directly). Checks the shapes the client
// parses: a chat completion, a streamed chat completion with usage, and a completion.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 });
const model = 'Qwen/Qwen2.5-0.5B-Instruct';

test('chat completion', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Say something short.' }], max_tokens: 12, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('streamed chat completion with usage', async () => {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Count to ten.' }], max_tokens: 20, temperature: 0,
    stream: true, stream_options: { include_usage: true }, ignore_eos: true,
  });
  let text = '';
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta?.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
    chunks++;
  }
  assert.ok(chunks >= 20, `expected >= 20 chunks, got ${chunks}`);
  assert.ok(text.length > 0);
  assert.equal(finish, 'length');
  assert.ok(usage, 'usage chunk present');
  assert.equal(usage.completion_tokens, 20);
});

test('completion', async () => {
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(r.usage.completion_tokens <= 8);
});

test('errors come back as OpenAI API errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [], max_tokens: 4 }),
    (err) => err instanceof OpenAI.APIError && err.status === 400 && typeof err.message === 'string',
  );
});
