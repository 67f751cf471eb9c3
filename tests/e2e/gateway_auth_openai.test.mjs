// The official `openai` npm client against tlab-gateway with API keys on (run_with_servers.py
// gateway-auth): the key it sends as Bearer is accepted, and the gateway's 401 and 429 come back
// as the client's own AuthenticationError and RateLimitError, with OpenAI's codes and Retry-After.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.OPENAI_BASE_URL;
const model = 'Qwen/Qwen2.5-0.5B-Instruct';
const ask = (client) => client.completions.create({ model, prompt: 'Hello', max_tokens: 4, temperature: 0 });

test('a valid key is accepted', async () => {
  const r = await ask(new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY, maxRetries: 0 }));
  assert.equal(r.object, 'text_completion');
  assert.ok(r.usage.completion_tokens <= 4);
});

test('a wrong key is an AuthenticationError with code invalid_api_key', async () => {
  await assert.rejects(ask(new OpenAI({ baseURL, apiKey: 'sk-not-a-real-key-000000', maxRetries: 0 })), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err.constructor.name}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'invalid_api_key');
    assert.equal(err.type, 'invalid_request_error');
    return true;
  });
});

test('a key over its request rate is a RateLimitError with Retry-After', async () => {
  const client = new OpenAI({ baseURL, apiKey: process.env.TLAB_LIMITED_KEY, maxRetries: 0 });
  await ask(client);
  await assert.rejects(ask(client), (err) => {
    assert.ok(err instanceof OpenAI.RateLimitError, `got ${err.constructor.name}`);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.equal(err.type, 'requests');
    const retry = Number(err.headers?.get ? err.headers.get('retry-after') : err.headers?.['retry-after']);
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    return true;
  });
});
