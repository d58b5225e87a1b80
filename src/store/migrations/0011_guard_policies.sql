-- Guard policies set per tenant at run time (PUT /admin/v1/tenants/{tenant}/guard,
-- `codepilot guard policy set`): a JSON document of the fields that differ from the
-- configuration's policy, and the tenant's own rules. Every replica polls it each second.
CREATE TABLE guard_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    spec        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);
