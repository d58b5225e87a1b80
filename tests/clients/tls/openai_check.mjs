// The official `openai` npm SDK (v5, fetch-based) against codepilot over https, as a user would
// set it up: the test CA through NODE_EXTRA_CA_CERTS, an API key, and then a client certificate
// through `fetchOptions.dispatcher` (an undici Agent) with no Authorization header at all.
// Run by run.sh with CP_BASE_URL (https://127.0.0.1:PORT/v1), CP_API_KEY, CP_PKI (the cert dir).
// `--untrusted`: run without NODE_EXTRA_CA_CERTS and expect the server's certificate to be refused.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { Agent } from 'undici';

const baseURL = process.env.CP_BASE_URL + '/v1';
const apiKey = process.env.CP_API_KEY;
const pki = process.env.CP_PKI;
let failures = 0;
const pass = (what) => console.log(`PASS: openai ${what}`);
const fail = (what, err) => {
    failures++;
    console.log(`FAIL: openai ${what}: ${describe(err)}`);
};
// An SDK error with what the server said: status, headers we care about, body.
function describe(err) {
    if (!(err instanceof Error)) return String(err);
    const parts = [err.constructor.name, err.message];
    if (err.status) parts.push(`status ${err.status}`);
    if (err.error) parts.push(`body ${JSON.stringify(err.error)}`);
    for (let c = err.cause; c; c = c.cause) parts.push(`cause ${c.code ?? ''} ${c.message}`);
    return parts.join(' | ');
}
async function check(what, fn) {
    try {
        const detail = await fn();
        pass(`${what}${detail ? ': ' + detail : ''}`);
    } catch (err) {
        fail(what, err);
    }
}
function expect(cond, message) {
    if (!cond) throw new Error(message);
}

const common = { baseURL, maxRetries: 0, timeout: 60_000 };

if (process.argv.includes('--untrusted')) {
    const client = new OpenAI({ ...common, apiKey });
    await check('without NODE_EXTRA_CA_CERTS refuses the server certificate', async () => {
        try {
            await client.models.list();
        } catch (err) {
            expect(err instanceof OpenAI.APIConnectionError, `expected APIConnectionError, got ${describe(err)}`);
            let code = '';
            for (let c = err.cause; c; c = c.cause) code = c.code ?? code;
            expect(/CERT|SIGNATURE|ISSUER/.test(code), `expected a certificate error, got ${describe(err)}`);
            return `APIConnectionError (${code})`;
        }
        throw new Error('the request succeeded: the untrusted certificate was accepted');
    });
    process.exit(failures ? 1 : 0);
}

// 1. An API key, the CA from NODE_EXTRA_CA_CERTS (Node's global fetch uses it).
const client = new OpenAI({ ...common, apiKey });
let model = '';
await check('models.list', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models.length > 0 && models[0].object === 'model', `no models: ${JSON.stringify(models)}`);
    model = models[0].id;
    return models.map((m) => m.id).join(', ');
});
const messages = [
    { role: 'system', content: 'You are a terse coding assistant.' },
    { role: 'user', content: 'Write a Python function that adds two numbers.' },
];
await check('chat.completions.create (non-streaming)', async () => {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 12 });
    expect(r.object === 'chat.completion', `object ${r.object}`);
    const c = r.choices[0];
    expect(c.message.role === 'assistant' && typeof c.message.content === 'string', JSON.stringify(c));
    expect(['stop', 'length'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
    expect(r.usage && r.usage.completion_tokens > 0, `usage ${JSON.stringify(r.usage)}`);
    return `${r.usage.completion_tokens} tokens, finish_reason ${c.finish_reason}, ${JSON.stringify(c.message.content.slice(0, 40))}`;
});
await check('chat.completions.create (streaming, include_usage)', async () => {
    const stream = await client.chat.completions.create({
        model, messages, max_tokens: 12, stream: true, stream_options: { include_usage: true },
    });
    let text = '', chunks = 0, role = '', finish = '', usage = null;
    for await (const chunk of stream) {
        expect(chunk.object === 'chat.completion.chunk', `object ${chunk.object}`);
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        const c = chunk.choices[0];
        if (!c) continue;
        role ||= c.delta.role ?? '';
        text += c.delta.content ?? '';
        finish ||= c.finish_reason ?? '';
    }
    expect(role === 'assistant', `first delta role '${role}'`);
    expect(finish === 'stop' || finish === 'length', `finish_reason '${finish}'`);
    expect(usage && usage.completion_tokens > 0, `usage ${JSON.stringify(usage)}`);
    return `${chunks} chunks, finish_reason ${finish}, usage ${usage.total_tokens} tokens`;
});
await check('completions.create (non-streaming)', async () => {
    const r = await client.completions.create({ model, prompt: 'def fibonacci(n):', max_tokens: 8 });
    expect(r.object === 'text_completion' && typeof r.choices[0].text === 'string', JSON.stringify(r));
    return `${r.usage.completion_tokens} tokens ${JSON.stringify(r.choices[0].text)}`;
});
await check('completions.create (streaming)', async () => {
    const stream = await client.completions.create({ model, prompt: 'def fibonacci(n):', max_tokens: 8, stream: true });
    let chunks = 0, finish = '';
    for await (const chunk of stream) {
        chunks++;
        finish ||= chunk.choices[0]?.finish_reason ?? '';
    }
    expect(chunks > 1 && finish, `${chunks} chunks, finish_reason '${finish}'`);
    return `${chunks} chunks, finish_reason ${finish}`;
});
await check('a wrong API key is AuthenticationError 401', async () => {
    try {
        await new OpenAI({ ...common, apiKey: 'cp_wrong' }).models.list();
    } catch (err) {
        expect(err instanceof OpenAI.AuthenticationError && err.status === 401, describe(err));
        return describe(err);
    }
    throw new Error('accepted');
});

// 2. A client certificate instead of an API key. `Authorization: null` removes the SDK's
// header; the wrapped fetch records what was actually sent.
function certClient(name) {
    const sent = [];
    const dispatcher = new Agent({
        connect: { cert: readFileSync(`${pki}/${name}.pem`), key: readFileSync(`${pki}/${name}.key`) },
    });
    const c = new OpenAI({
        ...common,
        apiKey: 'unused: the client certificate is the credential',
        defaultHeaders: { Authorization: null },
        fetchOptions: { dispatcher },
        fetch: (url, init) => {
            sent.push(new Headers(init?.headers).get('authorization'));
            return fetch(url, init);
        },
    });
    return { client: c, sent, close: () => dispatcher.close() };
}
const bound = certClient('client');
await check('client certificate (bound), no API key header: chat.completions.create', async () => {
    const r = await bound.client.chat.completions.create({ model, messages, max_tokens: 8 });
    expect(r.choices[0].message.role === 'assistant', JSON.stringify(r));
    return `${r.usage.completion_tokens} tokens`;
});
await check('client certificate (bound), no API key header: chat streaming', async () => {
    const stream = await bound.client.chat.completions.create({ model, messages, max_tokens: 8, stream: true });
    let chunks = 0;
    for await (const _ of stream) chunks++;
    expect(chunks > 1, `${chunks} chunks`);
    return `${chunks} chunks`;
});
await check('client certificate (bound), no API key header: completions.create', async () => {
    const r = await bound.client.completions.create({ model, prompt: 'int main() {', max_tokens: 8 });
    expect(r.object === 'text_completion', JSON.stringify(r));
    return JSON.stringify(r.choices[0].text);
});
await check('client certificate: no Authorization header was sent', async () => {
    expect(bound.sent.length >= 3 && bound.sent.every((h) => h === null), `sent ${JSON.stringify(bound.sent)}`);
    return `${bound.sent.length} requests, none with Authorization`;
});
const stranger = certClient('stranger');
await check('client certificate never bound: AuthenticationError 401', async () => {
    try {
        await stranger.client.chat.completions.create({ model, messages, max_tokens: 8 });
    } catch (err) {
        expect(err instanceof OpenAI.AuthenticationError && err.status === 401, describe(err));
        return describe(err);
    }
    throw new Error('accepted');
});
await bound.close();
await stranger.close();

process.exit(failures ? 1 : 0);
