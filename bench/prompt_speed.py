#!/usr/bin/env python3
"""prompt_speed: cold prompt evaluation, one request at a time, through /v1/completions with
max_tokens = 1 (fresh text every request, so no cache serves it). Prints one JSON line per
prompt size: prompt tokens/s as wall time per request (median), so both servers are
measured the same way."""
import argparse, http.client, json, random, statistics, time

WORDS = ("value total items count index result buffer config request handler token cache "
         "stream parse render update delete create insert select filter merge split chunk").split()


def prompt_text(rng, words):
    out = []
    for i in range(words):
        out.append(rng.choice(WORDS) + ("_" + str(rng.randrange(1000)) if i % 3 == 0 else ""))
        if i % 12 == 11:
            out.append("\n")
    return " ".join(out)


def post(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    data = res.read()
    if res.status != 200:
        raise SystemExit(f"HTTP {res.status}: {data[:200]!r}")
    return json.loads(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--label", default="server")
    ap.add_argument("--words", type=int, nargs="+", default=[80, 700])
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for words in args.words:
        rng = random.Random(args.seed * 1000 + words)
        rates, tokens = [], []
        post(args.port, {"prompt": "warm up", "max_tokens": 1, "temperature": 0})
        for _ in range(args.requests):
            body = {"prompt": prompt_text(rng, words), "max_tokens": 1, "temperature": 0}
            t0 = time.monotonic()
            r = post(args.port, body)
            dt = time.monotonic() - t0
            n = r["usage"]["prompt_tokens"]
            tokens.append(n)
            rates.append(n / dt)
        print(json.dumps({"label": args.label, "words": words, "prompt_tokens": statistics.median(tokens),
                          "prompt_tokens_per_s": statistics.median(rates), "requests": args.requests}), flush=True)


if __name__ == "__main__":
    main()
