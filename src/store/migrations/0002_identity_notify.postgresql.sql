-- PostgreSQL only: every change to identity data (by any replica, the CLI or psql) sends a
-- NOTIFY on codepilot_identity, so that servers drop cached credentials at once. SQLite
-- servers see changes through PRAGMA data_version instead.
CREATE FUNCTION codepilot_identity_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('codepilot_identity', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION codepilot_identity_changed();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION codepilot_identity_changed();
CREATE TRIGGER memberships_changed AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION codepilot_identity_changed();
-- last_used_at alone does not change what a key may do: no notification for it.
CREATE TRIGGER api_keys_changed
    AFTER INSERT OR DELETE OR UPDATE OF secret_hash, tenant_id, user_id, scopes, expires_at, revoked_at ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION codepilot_identity_changed();
CREATE TRIGGER sessions_changed AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION codepilot_identity_changed();
