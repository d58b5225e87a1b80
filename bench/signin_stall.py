#!/usr/bin/env python3
"""Does sign-in work stall everyone else? /health and short-completion latency while 32
sign-ins wait on a directory that stopped answering (the test slapd, SIGSTOP), and local
password sign-ins per second. Run by scripts/bench_signin.sh (make bench-signin), which starts
the throw-away slapd; stdlib only.

Each mode is one codepilot process:
  inline  server.sign_in_threads = 0 and server.worker_threads = 0: sign-in, LDAP and store
          work on the I/O threads, as before issue 9 (kept only for this comparison)
  pooled  the defaults: a sign-in lane (2 threads) and a store lane (8 threads)
"""
import argparse, http.client, json, os, re, signal, statistics, subprocess, sys, tempfile, threading, time


def call(port, method, path, body=None, token=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


TIMEOUT_S = 5


def timed(fn, n, budget_s=20):
    """Latencies in ms; a call that times out counts as TIMEOUT_S. Stops after budget_s."""
    out, until = [], time.time() + budget_s
    for _ in range(n):
        if time.time() > until:
            break
        t = time.perf_counter()
        try:
            fn()
            out.append((time.perf_counter() - t) * 1000)
        except Exception:
            out.append(TIMEOUT_S * 1000.0)
    return out


def start(binary, model, mode, ldap, workdir):
    data = os.path.join(workdir, mode)
    os.makedirs(data, exist_ok=True)
    secret = os.path.join(workdir, "bind-password")
    with open(secret, "w") as f:
        f.write(ldap["password"])
    os.chmod(secret, 0o600)
    cfg = os.path.join(data, "codepilot.toml")
    threads = "sign_in_threads = 0\nworker_threads = 0\n" if mode == "inline" else ""
    with open(cfg, "w") as f:
        f.write(f"""[server]
{threads}[auth]
sign_in_free_failures = 1000   # the bench fails on purpose; throttling would answer 429 at once
sign_in_lock_failures = 100000
[model]
parallel = 2
ctx = 2048
[auth.ldap]
enabled = true
url = "{ldap['url']}"
allow_insecure = true          # plain LDAP, as measured before: the bench times sign-in work, not TLS
bind_dn = "cn=codepilot-service,dc=codepilot,dc=test"
bind_password_file = "{secret}"
base_dn = "ou=people,dc=codepilot,dc=test"
user_filter = "(&(objectClass=inetOrgPerson)(uid={{username}}))"
timeout_ms = 30000
""")
    port_file = os.path.join(data, "port")
    log = open(os.path.join(data, "log"), "w")
    proc = subprocess.Popen([binary, "serve", "--config", cfg, "--model", model, "--data-dir", data, "--port", "0",
                             "--port-file", port_file, "--threads", "1"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    port = int(open(port_file).read())
    key = None
    for _ in range(100):
        path = os.path.join(data, "bootstrap-owner.key")
        text = open(path).read() if os.path.exists(path) else open(os.path.join(data, "log")).read()
        m = re.search(r"cpk_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}", text)
        if m:
            key = m.group(0)
            break
        time.sleep(0.05)
    return proc, port, key


def measure(port, key, n):
    health = timed(lambda: call(port, "GET", "/health", timeout=TIMEOUT_S), n)
    completion = timed(lambda: call(port, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 4}, key,
                                    timeout=TIMEOUT_S), n // 4)
    return health, completion


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ldap-url", required=True)
    ap.add_argument("--slapd-pid-file", required=True)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    slapd = int(open(args.slapd_pid_file).read())
    ldap = {"url": args.ldap_url, "password": "service-secret"}
    rows, probes = [], []
    with tempfile.TemporaryDirectory() as work:
        for mode in ("inline", "pooled"):
            proc, port, key = start(args.binary, args.model, mode, ldap, work)
            try:
                call(port, "POST", "/admin/v1/users", {"username": "bench", "password": "bench-password-1"}, key)
                measure(port, key, 20)  # warm: the key is cached, the model loaded
                quiet = measure(port, key, args.requests)
                os.kill(slapd, signal.SIGSTOP)
                stop = threading.Event()
                def sign_in():
                    while not stop.is_set():
                        try:
                            call(port, "POST", "/auth/login", {"username": "alice", "password": "alice-pass"}, timeout=60)
                        except Exception:
                            pass
                waiters = [threading.Thread(target=sign_in) for _ in range(32)]
                for t in waiters:
                    t.start()
                time.sleep(0.5)
                try:
                    stalled = measure(port, key, args.requests)
                finally:
                    os.kill(slapd, signal.SIGCONT)
                    stop.set()
                    for t in waiters:
                        t.join()
                count, until = 0, time.time() + 5
                lock = threading.Lock()
                def local():
                    nonlocal count
                    while time.time() < until:
                        status, _ = call(port, "POST", "/auth/login", {"username": "bench", "password": "bench-password-1"})
                        if status == 200:
                            with lock:
                                count += 1
                ts = [threading.Thread(target=local) for _ in range(4)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                rows.append((mode, quiet, stalled, count / 5))
                if mode == "pooled":  # what a wrong guess costs, by kind of account (account probing)
                    call(port, "POST", "/admin/v1/users", {"username": "svc", "kind": "service"}, key)
                    kinds = {"wrong password": "bench", "unknown account": "nobody-here",
                             "account without a password": "svc"}
                    times = {label: [] for label in kinds}
                    for _ in range(40):  # interleaved, so that drift on a shared machine hits all alike
                        for label, user in kinds.items():
                            times[label] += timed(
                                lambda: call(port, "POST", "/auth/login", {"username": user, "password": "guess-1"}), 1)
                    probes.extend((label, statistics.median(ms)) for label, ms in times.items())
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    print("| mode | /health p50 / p99 quiet (ms) | /health p50 / p99 with 32 sign-ins stalled | "
          "completion p50 / p99 quiet | completion p50 / p99 stalled | local sign-ins/s (4 clients) |")
    print("|---|---|---|---|---|---|")
    for mode, quiet, stalled, rate in rows:
        f = lambda xs: f"{statistics.median(xs):.2f} / {percentile(xs, 99):.2f} (n={len(xs)})"
        print(f"| {mode} | {f(quiet[0])} | {f(stalled[0])} | {f(quiet[1])} | {f(stalled[1])} | {rate:.1f} |")
    print()
    print("| failed sign-in (pooled, LDAP up) | median ms |")
    print("|---|---|")
    for label, ms in probes:
        print(f"| {label} | {ms:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
