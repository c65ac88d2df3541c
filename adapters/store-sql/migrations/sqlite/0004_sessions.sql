-- Sessions: a per-user version that access tokens carry (bumped to end
-- every access token of the user at once), and refresh-token families (a
-- login starts one; every rotation stays in it; reuse of a spent token
-- revokes the whole family).
ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT NOT NULL DEFAULT '';
-- Tokens issued before families existed are each a family of their own.
UPDATE refresh_tokens SET family_id = id WHERE family_id = '';
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
