#!/usr/bin/env python3
"""shift_exactness: how often shifted KV reuse changes a completion. The same sequence of
/infill requests (a cursor moving down a file one line per request, tabby-agent's 20+20-line
windows, or typing at the cursor) goes to two servers: one reusing shifted chunks
(model.kv_shift_min_chunk > 0), one with exact reuse only, whose answers equal a cold
start's (PromptPath tests). Prints one JSON line: requests, identical completions, and the
mean share of each completion's characters that agree before the first difference."""
import argparse, http.client, json


def post(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/infill", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    data = res.read()
    if res.status != 200:
        raise SystemExit(f"HTTP {res.status} from port {port}: {data[:200]!r}")
    return json.loads(data)


def make_file(lines):
    out = ["import os", "import json", ""]
    for i in range(lines):
        if i % 9 == 0:
            out.append(f"def process_{i}(items, limit={i % 50}):")
        elif i % 9 == 8:
            out.append("")
        else:
            out.append(f"    total_{i} = sum(item['v{i}'] for item in items[:limit]) * {i % 7 + 1}")
    return [l + "\n" for l in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shifting-port", type=int, required=True)
    ap.add_argument("--exact-port", type=int, required=True)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    lines = make_file(200)
    same, agree_share, shifted = 0, [], 0
    for r in range(args.requests):
        cursor = 60 + r
        indent = len(lines[cursor]) - len(lines[cursor].lstrip(" "))
        prefix = "".join(lines[cursor - 19:cursor]) + lines[cursor][:indent]
        suffix = lines[cursor][indent:] + "".join(lines[cursor + 1:cursor + 20])
        body = {"input_prefix": prefix, "input_suffix": suffix, "n_predict": args.max_tokens,
                "ignore_eos": True, "temperature": 0}
        a = post(args.shifting_port, body)
        b = post(args.exact_port, body)
        shifted += a.get("tokens_shifted", 0)
        x, y = a["content"], b["content"]
        same += x == y
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        agree_share.append(n / max(len(y), 1))
    print(json.dumps({"requests": args.requests, "identical": same, "identical_share": same / args.requests,
                      "agreeing_prefix_share_mean": sum(agree_share) / len(agree_share),
                      "shifted_tokens_total": shifted}))


if __name__ == "__main__":
    main()
