#!/usr/bin/env python3
"""Writes fuzz/corpus/fuzz_jwt/ seeds and prints the JWKS that fuzz_jwt.cpp embeds.

Run once with fresh keys (openssl genrsa -out rsa.pem 2048; openssl ecparam -name prime256v1
-genkey -noout -out ec.pem) in the current folder; the private keys are then thrown away:
the fuzzer needs only the public half, and seeds that are validly signed by it.
"""
import base64, json, re, subprocess, sys, os

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def openssl(*args, data=None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout

def der_ecdsa_to_raw(der: bytes) -> bytes:
    # SEQUENCE { INTEGER r, INTEGER s } → r||s, 32 bytes each
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 2
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(32, b"\0")
        i += 2 + n
    return out

modulus = bytes.fromhex(openssl("rsa", "-in", "rsa.pem", "-noout", "-modulus").decode().split("=")[1].strip())
text = openssl("ec", "-in", "ec.pem", "-noout", "-text").decode()
pub = bytes.fromhex("".join(re.search(r"pub:\s*([0-9a-f:\s]+)ASN1", text).group(1).split()).replace(":", ""))
jwks = {"keys": [
    {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(modulus), "e": "AQAB"},
    {"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:65])},
]}

def token(header, claims, key):
    signed = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = openssl("dgst", "-sha256", "-sign", key, data=signed.encode())
    if key == "ec.pem":
        sig = der_ecdsa_to_raw(sig)
    return signed + "." + b64(sig)

now = 1_900_000_000  # fuzz_jwt.cpp's clock
claims = {"iss": "https://idp.example", "aud": "codepilot", "sub": "u1", "preferred_username": "alice",
          "tenant": "acme", "role": "developer", "iat": now - 10, "nbf": now - 10, "exp": now + 3600}
out = sys.argv[1]
seeds = {
    "rs256": token({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}, claims, "rsa.pem"),
    "es256": token({"alg": "ES256", "kid": "ec-1"}, claims, "ec.pem"),
    "aud-array": token({"alg": "RS256", "kid": "rsa-1"}, dict(claims, aud=["other", "codepilot"]), "rsa.pem"),
    "expired": token({"alg": "RS256", "kid": "rsa-1"}, dict(claims, exp=now - 3600), "rsa.pem"),
    "no-kid": token({"alg": "ES256"}, claims, "ec.pem"),
    "alg-none": b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims).encode()) + ".",
}
for name, value in seeds.items():
    open(os.path.join(out, name), "w").write(value)
# A seed with a JWKS after the token: the harness parses it and verifies against its keys.
open(os.path.join(out, "with-jwks"), "w").write(seeds["es256"] + "\n" + json.dumps(jwks))
print(json.dumps(jwks))
