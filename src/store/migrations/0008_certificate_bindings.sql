-- Client certificates (mTLS) bound to a user in a tenant: by the certificate's SHA-256
-- fingerprint, its subject DN or one of its subject alternative names. The binding acts like
-- an API key of that user (its scopes), without a secret: the TLS handshake proved the holder.
CREATE TABLE certificate_bindings (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, value)
);
CREATE INDEX certificate_bindings_tenant ON certificate_bindings(tenant_id);
