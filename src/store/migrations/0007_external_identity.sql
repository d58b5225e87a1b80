-- Directory and identity-provider users are keyed by what the provider says cannot change:
-- the LDAP entry's DN, the OIDC issuer and subject. The user name is only what people type.
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external ON users(source, external_id);
