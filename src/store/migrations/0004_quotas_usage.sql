-- Quotas per tenant, per user within a tenant and per key (NULL: no limit), and usage
-- accounting: tokens and requests per day, tenant, user, key and model. Usage rows name the
-- tenant and user (names never change) so that history outlives deletions.
CREATE TABLE quotas (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    scope           TEXT NOT NULL CHECK (scope IN ('tenant', 'user', 'key')),
    subject         TEXT NOT NULL DEFAULT '',
    rpm             BIGINT,
    tpm             BIGINT,
    daily_tokens    BIGINT,
    monthly_tokens  BIGINT,
    concurrency     BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, subject)
);

CREATE TABLE usage_daily (
    day                TEXT NOT NULL,
    tenant             TEXT NOT NULL,
    username           TEXT NOT NULL,
    key_prefix         TEXT NOT NULL,
    model              TEXT NOT NULL,
    requests           BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    cached_tokens      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant, username, key_prefix, model)
);
CREATE INDEX usage_daily_tenant ON usage_daily(tenant, day);
