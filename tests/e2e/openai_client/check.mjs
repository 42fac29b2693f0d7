// The official `openai` npm client against a running pagedllm coordinator's HTTP API.
//   node check.mjs CASES.json
// CASES.json (written by tests/e2e/openai_http_test.cc): {base_url, api_key, model,
//   completions: [{prompt, max_tokens, text, completion_tokens, prompt_tokens}]  (greedy, from gRPC)
//   stop_case: {prompt, max_tokens, stop, text}
//   chat: [{messages, max_tokens, text, completion_tokens}] (greedy, from gRPC)   optional
// Every check that fails is printed; the exit status is the number of failures (0: all passed).
import fs from 'node:fs';
import OpenAI from 'openai';

const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const client = new OpenAI({ baseURL: cases.base_url, apiKey: cases.api_key, maxRetries: 0 });
let failures = 0;
let passed = 0;

function check(condition, what, detail) {
  if (condition) {
    passed += 1;
  } else {
    failures += 1;
    console.log(`FAIL ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
  }
}

async function expectError(what, status, promise, param) {
  try {
    await promise;
    check(false, `${what}: expected HTTP ${status}, got success`);
  } catch (error) {
    check(error instanceof OpenAI.APIError, `${what}: an APIError`, String(error));
    check(error.status === status, `${what}: status ${status}`, error.status);
    check(typeof error.error?.message === 'string' && error.error.message.length > 0,
      `${what}: error.message`, error.error);
    if (param !== undefined) check(error.error?.param === param, `${what}: param ${param}`, error.error);
  }
}

async function completions() {
  for (const c of cases.completions) {
    const r = await client.completions.create({
      model: cases.model, prompt: c.prompt, max_tokens: c.max_tokens, temperature: 0 });
    check(r.object === 'text_completion', 'completion object', r.object);
    check(r.choices.length === 1 && r.choices[0].text === c.text, 'greedy text equals gRPC',
      { got: r.choices[0]?.text, want: c.text });
    check(r.choices[0].finish_reason === 'length', 'finish_reason length', r.choices[0].finish_reason);
    check(r.usage.completion_tokens === c.completion_tokens && r.usage.prompt_tokens === c.prompt_tokens &&
      r.usage.total_tokens === c.prompt_tokens + c.completion_tokens, 'usage', r.usage);

    // The same through server-sent events, with the usage chunk at the end.
    const stream = await client.completions.create({
      model: cases.model, prompt: c.prompt, max_tokens: c.max_tokens, temperature: 0, stream: true,
      stream_options: { include_usage: true } });
    let text = '';
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      for (const choice of chunk.choices) {
        text += choice.text;
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    check(text === c.text, 'streamed text equals gRPC', { got: text, want: c.text });
    check(chunks >= 2, 'several chunks', chunks);
    check(finish === 'length', 'streamed finish_reason', finish);
    check(usage !== null && usage.completion_tokens === c.completion_tokens, 'streamed usage', usage);
  }
}

async function severalPromptsAndChoices() {
  const prompts = cases.completions.slice(0, 2).map((c) => c.prompt);
  const r = await client.completions.create({
    model: cases.model, prompt: prompts, max_tokens: 6, temperature: 0.8, top_p: 0.95, n: 2, seed: 7 });
  check(r.choices.length === 4, 'two prompts x n=2 give 4 choices', r.choices.length);
  check(JSON.stringify(r.choices.map((c) => c.index).sort()) === '[0,1,2,3]', 'choice indexes', r.choices);
  const again = await client.completions.create({
    model: cases.model, prompt: prompts, max_tokens: 6, temperature: 0.8, top_p: 0.95, n: 2, seed: 7 });
  check(JSON.stringify(again.choices.map((c) => c.text)) === JSON.stringify(r.choices.map((c) => c.text)),
    'a seed repeats its samples', { first: r.choices, second: again.choices });

  // Token-id prompts.
  const ids = await client.completions.create({
    model: cases.model, prompt: [1, 2, 3, 4], max_tokens: 3, temperature: 0 });
  check(ids.usage.prompt_tokens === 4 && ids.usage.completion_tokens === 3, 'token id prompt usage', ids.usage);

  // echo: the prompt as given starts the text.
  const echoed = await client.completions.create({
    model: cases.model, prompt: prompts[0], max_tokens: 3, temperature: 0, echo: true });
  check(echoed.choices[0].text.startsWith(prompts[0]) && echoed.choices[0].text.length > prompts[0].length,
    'echo starts with the prompt', echoed.choices[0].text);

  // Best of and beam search (extensions) return n choices.
  const beam = await client.completions.create({
    model: cases.model, prompt: prompts[0], max_tokens: 5, temperature: 0, n: 2, best_of: 3,
    use_beam_search: true });
  check(beam.choices.length === 2, 'beam search n=2', beam.choices);
}

async function logprobs() {
  const c = cases.completions[0];
  const r = await client.completions.create({
    model: cases.model, prompt: c.prompt, max_tokens: c.max_tokens, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  check(lp !== null && lp.tokens.length === c.completion_tokens, 'one logprob per token', lp);
  check(lp.tokens.join('') === r.choices[0].text, 'logprob tokens spell the text', lp.tokens);
  check(lp.token_logprobs.every((x) => x <= 0), 'logprobs <= 0', lp.token_logprobs);
  check(lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3),
    'top_logprobs has 2 (+ the sampled) entries', lp.top_logprobs);
  check(lp.text_offset[0] === 0 && lp.text_offset.every((x, i) => i === 0 || x >= lp.text_offset[i - 1]),
    'text_offset grows', lp.text_offset);
  // Greedy: the sampled token is the most likely one.
  check(lp.token_logprobs.every((x, i) => Math.max(...Object.values(lp.top_logprobs[i])) <= x + 1e-4),
    'greedy samples the top token', lp);
}

async function stops() {
  const s = cases.stop_case;
  const r = await client.completions.create({
    model: cases.model, prompt: s.prompt, max_tokens: s.max_tokens, temperature: 0, stop: [s.stop] });
  check(r.choices[0].text === s.text, 'text ends before the stop string', { got: r.choices[0].text, want: s.text });
  check(r.choices[0].finish_reason === 'stop', 'finish_reason stop', r.choices[0].finish_reason);
  const stream = await client.completions.create({
    model: cases.model, prompt: s.prompt, max_tokens: s.max_tokens, temperature: 0, stop: s.stop, stream: true });
  let text = '';
  for await (const chunk of stream) for (const choice of chunk.choices) text += choice.text;
  check(text === s.text, 'streamed text ends before the stop string', { got: text, want: s.text });
}

async function errors() {
  const c = cases.completions[0];
  await expectError('temperature out of range', 400,
    client.completions.create({ model: cases.model, prompt: c.prompt, temperature: -1 }), 'temperature');
  await expectError('a field of the wrong type', 400,
    client.completions.create({ model: cases.model, prompt: c.prompt, max_tokens: 'many' }), 'max_tokens');
  await expectError('an unknown model', 404,
    client.completions.create({ model: 'no-such-model', prompt: c.prompt }));
  await expectError('a prompt longer than the context', 400,
    client.completions.create({ model: cases.model, prompt: c.prompt, max_tokens: 1000000 }), 'max_tokens');
  const stranger = new OpenAI({ baseURL: cases.base_url, apiKey: 'not-the-key', maxRetries: 0 });
  await expectError('a wrong API key', 401, stranger.completions.create({ model: cases.model, prompt: 'x' }));
  await expectError('a wrong API key (models)', 401, stranger.models.list());
  if (!cases.chat) {
    await expectError('chat without a template', 400,
      client.chat.completions.create({ model: cases.model, messages: [{ role: 'user', content: 'hi' }] }));
  }
}

async function chat() {
  for (const c of cases.chat) {
    const r = await client.chat.completions.create({
      model: cases.model, messages: c.messages, max_tokens: c.max_tokens, temperature: 0 });
    check(r.object === 'chat.completion', 'chat object', r.object);
    check(r.choices[0].message.role === 'assistant', 'assistant role', r.choices[0].message);
    check(r.choices[0].message.content === c.text, 'chat greedy text equals gRPC',
      { got: r.choices[0].message.content, want: c.text });
    check(r.usage.completion_tokens === c.completion_tokens, 'chat usage', r.usage);

    const stream = await client.chat.completions.create({
      model: cases.model, messages: c.messages, max_completion_tokens: c.max_tokens, temperature: 0,
      stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role = null;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      check(chunk.object === 'chat.completion.chunk', 'chunk object', chunk.object);
      for (const choice of chunk.choices) {
        if (choice.delta.role) role = choice.delta.role;
        text += choice.delta.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    check(role === 'assistant', 'streamed role', role);
    check(text === c.text, 'streamed chat text equals gRPC', { got: text, want: c.text });
    check(finish === 'length', 'streamed chat finish', finish);
    check(usage !== null && usage.completion_tokens === c.completion_tokens, 'streamed chat usage', usage);
  }
  const c = cases.chat[0];
  const r = await client.chat.completions.create({
    model: cases.model, messages: c.messages, max_tokens: 4, temperature: 1.0, n: 3, logprobs: true,
    top_logprobs: 2, seed: 11 });
  check(r.choices.length === 3, 'chat n=3', r.choices.length);
  for (const choice of r.choices) {
    const content = choice.logprobs?.content ?? [];
    check(content.length >= 1 && content.length <= 4, 'chat logprobs per token', choice.logprobs);
    check(content.every((t) => t.top_logprobs.length === 2 && Array.isArray(t.bytes)), 'chat top_logprobs', content);
  }
  await expectError('top_logprobs without logprobs', 400,
    client.chat.completions.create({ model: cases.model, messages: c.messages, top_logprobs: 2 }), 'top_logprobs');
  await expectError('messages missing', 400, client.chat.completions.create({ model: cases.model }), 'messages');
}

async function models() {
  const list = await client.models.list();
  const ids = [];
  for await (const model of list) ids.push(model.id);
  check(ids.length === 1 && ids[0] === cases.model, 'models.list', ids);
  const one = await client.models.retrieve(cases.model);
  check(one.id === cases.model, 'models.retrieve', one);
}

for (const [name, run] of [['models', models], ['completions', completions],
  ['several prompts and choices', severalPromptsAndChoices], ['logprobs', logprobs], ['stop', stops],
  ['errors', errors], ...(cases.chat ? [['chat', chat]] : [])]) {
  try {
    await run();
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name} threw: ${error?.stack ?? error}`);
  }
}
console.log(`${passed} checks passed, ${failures} failed`);
process.exit(Math.min(failures, 100));
