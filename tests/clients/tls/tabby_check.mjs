// tabby-agent (the client behind Tabby's IDE extensions) against codepilot over https with a
// private CA. tabby-agent 1.5 speaks two protocols on stdio, and both are driven here as an
// editor would:
//   - the JSON-lines agent protocol (`tabby-agent`, used by the Vim and IntelliJ plugins):
//     initialize with the endpoint and token, getStatus, getServerHealthState, provideCompletions,
//     postEvent;
//   - LSP (`tabby-agent --lsp --stdio`), configured by ~/.tabby-client/agent/config.toml:
//     initialize, didOpen, textDocument/completion.
// The CA: tabby-agent's default `tls.caCerts = "system"` replaces Node's CA store on Linux with
// /etc/ssl/certs, which drops NODE_EXTRA_CA_CERTS. So the agent protocol runs with
// NODE_EXTRA_CA_CERTS and `tls.caCerts = "bundled"` (Node's own store, extra certs included),
// and LSP with `tls.caCerts = "<the CA file>"` and no NODE_EXTRA_CA_CERTS; the default is
// shown as a NOTE.
// The agents run in HOME: their log rotation writes audit.json into the working directory.
// Run by run.sh with HOME (a temp dir), CP_ENDPOINT (https://127.0.0.1:PORT), CP_TOKEN, CP_CA
// (the CA file), NODE_EXTRA_CA_CERTS (= CP_CA), CP_AGENT (tabby-agent's dist/cli.js).
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const endpoint = process.env.CP_ENDPOINT;
const token = process.env.CP_TOKEN;
const agentPath = process.env.CP_AGENT;
const home = process.env.HOME;
const caFile = process.env.CP_CA;
let failures = 0;
const pass = (what) => console.log(`PASS: tabby-agent ${what}`);
const fail = (what) => {
    failures++;
    console.log(`FAIL: tabby-agent ${what}`);
};
function expect(cond, message) {
    if (!cond) throw new Error(message);
}
const withTimeout = (promise, ms, what) =>
    Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))]);

// A small Python file; the cursor sits after `return ` on the last line of the function.
const project = join(home, 'project');
mkdirSync(project, { recursive: true });
const filepath = join(project, 'geometry.py');
const before = 'import math\n\n\ndef circle_area(radius):\n    """Return the area of a circle."""\n    return ';
const after = '\n\n\ndef main():\n    print(circle_area(2.0))\n';
const text = before + after;
writeFileSync(filepath, text);

// tabby-agent writes debug logs under ~/.tabby-client/agent/logs: shown when something fails.
const agentDir = join(home, '.tabby-client', 'agent');
mkdirSync(agentDir, { recursive: true });
writeFileSync(
    join(agentDir, 'config.toml'),
    `[server]\nendpoint = "${endpoint}"\ntoken = "${token}"\n\n[tls]\ncaCerts = "${caFile}"\n\n` +
        '[logs]\nlevel = "debug"\n\n[anonymousUsageTracking]\ndisable = true\n',
);
// The agent's environment: NODE_EXTRA_CA_CERTS only where asked for.
function agentEnv(extraCa) {
    const env = { ...process.env };
    if (!extraCa) delete env.NODE_EXTRA_CA_CERTS;
    return env;
}
function agentLogTail() {
    try {
        const dir = join(agentDir, 'logs');
        return readdirSync(dir)
            .filter((f) => f.endsWith('.log') && !f.startsWith('current')) // current.log: a symlink
            .map((f) => readFileSync(join(dir, f), 'utf8').split('\n').slice(-15).join('\n'))
            .join('\n');
    } catch {
        return '(no agent log)';
    }
}

async function check(what, fn) {
    try {
        const detail = await fn();
        pass(`${what}${detail ? ': ' + detail : ''}`);
        return true;
    } catch (err) {
        fail(`${what}: ${err.message}`);
        return false;
    }
}

// --- 1. the JSON-lines agent protocol: [id, {func, args}] -> [id, result]; events come as [0, event]
function startJsonLines() {
    const child = spawn(process.execPath, [agentPath], { stdio: ['pipe', 'pipe', 'pipe'], env: agentEnv(true), cwd: home });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const waiting = new Map();
    const events = [];
    let buffer = '';
    child.stdout.on('data', (d) => {
        buffer += d;
        for (let i; (i = buffer.indexOf('\n')) >= 0; ) {
            const line = buffer.slice(0, i);
            buffer = buffer.slice(i + 1);
            if (!line.startsWith('[')) continue; // a library's note on stdout (FileStreamRotator)
            const [id, result] = JSON.parse(line);
            if (id === 0) events.push(result);
            else waiting.get(id)?.(result);
        }
    });
    let nextId = 1;
    const call = (func, ...args) => {
        const id = nextId++;
        const answer = new Promise((resolve) => waiting.set(id, resolve));
        child.stdin.write(JSON.stringify([id, { func, args }]) + '\n');
        return withTimeout(answer, 60_000, func);
    };
    return { child, call, events, stderr: () => stderr };
}
const agentConfig = (tls) => ({
    server: { endpoint, token },
    tls,
    anonymousUsageTracking: { disable: true },
    logs: { level: 'debug' },
});

// The default tls.caCerts ("system") with NODE_EXTRA_CA_CERTS: reported, not judged.
async function defaultCaNote() {
    const { child, call } = startJsonLines();
    try {
        await call('initialize', { config: agentConfig({ caCerts: 'system' }), clientProperties: { session: { client: 'codepilot tls test' } } });
        const status = await call('getStatus');
        console.log(
            `NOTE: tabby-agent with its default tls.caCerts = "system" and NODE_EXTRA_CA_CERTS: status '${status}'` +
                (status === 'ready' ? '' : ' (it replaces the CA store with /etc/ssl/certs; set tls.caCerts)'),
        );
        await call('finalize');
    } catch (err) {
        console.log(`NOTE: tabby-agent with its default tls.caCerts: ${err.message}`);
    } finally {
        child.kill();
    }
}

async function jsonLinesProtocol() {
    const { child, call, events, stderr } = startJsonLines();
    try {
        await check('(agent protocol, NODE_EXTRA_CA_CERTS, tls.caCerts = "bundled") initialize with the https endpoint and token', async () => {
            const ok = await call('initialize', {
                config: agentConfig({ caCerts: 'bundled' }),
                clientProperties: { session: { client: 'codepilot tls test' } },
            });
            expect(ok === true, `initialize returned ${JSON.stringify(ok)}; events ${JSON.stringify(events)}`);
        });
        const ready = await check('(agent protocol) getStatus after the health check', async () => {
            const status = await call('getStatus');
            expect(status === 'ready', `status '${status}', issues ${JSON.stringify(await call('getIssues'))}`);
            return status;
        });
        await check('(agent protocol) getServerHealthState (GET /v1/health)', async () => {
            const health = await call('getServerHealthState');
            expect(health && health.model && health.device, `health ${JSON.stringify(health)}`);
            return `model ${health.model}, device ${health.device}, version ${health.version?.git_describe}`;
        });
        if (!ready) return;
        let completion = null;
        await check('(agent protocol) provideCompletions (POST /v1/completions, segments)', async () => {
            completion = await call('provideCompletions', {
                filepath,
                language: 'python',
                text,
                position: before.length,
                manually: true,
            });
            expect(completion, 'no answer (the agent logged the error)');
            // `cmpl-` ids come from the server; the agent makes up `agent-` ids when it sent nothing.
            expect(/^cmpl-/.test(completion.id), `id ${completion.id}: the request did not reach the server`);
            expect(completion.choices.length > 0, `the server answered ${completion.id} but no choice is left`);
            return `${completion.id}, ${completion.choices.length} choice(s): ${JSON.stringify(completion.choices[0].text.slice(0, 60))}`;
        });
        if (completion && /^cmpl-/.test(completion.id)) {
            await check('(agent protocol) postEvent view (POST /v1/events)', async () => {
                const ok = await call('postEvent', { type: 'view', completion_id: completion.id, choice_index: 0 });
                expect(ok === true, `postEvent returned ${JSON.stringify(ok)}`);
            });
        }
        await call('finalize');
    } finally {
        child.kill();
        if (failures) console.log(`--- agent stderr\n${stderr().slice(-2000)}\n--- agent log\n${agentLogTail()}`);
    }
}

// --- 2. LSP over stdio (Content-Length framing)
async function lspProtocol() {
    const child = spawn(process.execPath, [agentPath, '--lsp', '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: agentEnv(false), cwd: home });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const waiting = new Map();
    const messages = [];
    let buffer = Buffer.alloc(0);
    const send = (msg) => {
        const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', ...msg }));
        child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
        child.stdin.write(body);
    };
    child.stdout.on('data', (d) => {
        buffer = Buffer.concat([buffer, d]);
        for (;;) {
            const end = buffer.indexOf('\r\n\r\n');
            if (end < 0) return;
            const length = Number(/Content-Length: *(\d+)/i.exec(buffer.slice(0, end).toString())?.[1]);
            if (buffer.length < end + 4 + length) return;
            const msg = JSON.parse(buffer.slice(end + 4, end + 4 + length).toString());
            buffer = buffer.slice(end + 4 + length);
            if (msg.id !== undefined && msg.method) send({ id: msg.id, result: null }); // a request to the editor
            else if (msg.id !== undefined) waiting.get(msg.id)?.(msg);
            else messages.push(msg);
        }
    });
    let nextId = 1;
    const request = (method, params) => {
        const id = nextId++;
        const answer = new Promise((resolve) => waiting.set(id, resolve));
        send({ id, method, params });
        return withTimeout(answer, 60_000, method);
    };
    const uri = pathToFileURL(filepath).href;
    try {
        await check('(LSP, tls.caCerts = the CA file) initialize; the agent reaches the server (no disconnected/unauthorized status)', async () => {
            const r = await request('initialize', {
                processId: process.pid,
                clientInfo: { name: 'codepilot-tls-test', version: '1' },
                rootUri: pathToFileURL(project).href,
                capabilities: {},
            });
            expect(r.result?.capabilities?.completionProvider, `initialize: ${JSON.stringify(r)}`);
            send({ method: 'initialized', params: {} });
            await new Promise((resolve) => setTimeout(resolve, 300));
            const shown = messages.filter((m) => m.method === 'window/showMessage');
            expect(shown.length === 0, `the agent said ${JSON.stringify(shown)}`);
            return `${r.result.serverInfo?.name} ${r.result.serverInfo?.version}`;
        });
        send({ method: 'textDocument/didOpen', params: { textDocument: { uri, languageId: 'python', version: 1, text } } });
        const lines = before.split('\n');
        const position = { line: lines.length - 1, character: lines[lines.length - 1].length };
        await check('(LSP) textDocument/completion at the cursor', async () => {
            const r = await request('textDocument/completion', { textDocument: { uri }, position });
            expect(r.result, `completion: ${JSON.stringify(r)}`);
            expect(r.result.items.length > 0, `no items (${JSON.stringify(r.result)}); log:\n${agentLogTail()}`);
            const item = r.result.items[0];
            return `${r.result.items.length} item(s), completion ${item.data?.completionId}: ${JSON.stringify(item.textEdit?.newText?.slice(0, 60))}`;
        });
        await withTimeout(request('shutdown'), 10_000, 'shutdown').catch(() => {});
        send({ method: 'exit' });
    } finally {
        setTimeout(() => child.kill(), 500).unref();
        if (failures) console.log(`--- agent stderr\n${stderr.slice(-2000)}`);
    }
}

await defaultCaNote();
await jsonLinesProtocol();
await lspProtocol();
process.exit(failures ? 1 : 0);
