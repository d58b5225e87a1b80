-- The keyed chain: a row is linked by HMAC-SHA256 under a chain key held outside the database,
-- and names that key here (rotation: old rows keep the id they were linked with). '' marks rows
-- linked before keys existed, with plain sha256(prev_hash || "\n" || body); they still verify.
ALTER TABLE audit_log ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
