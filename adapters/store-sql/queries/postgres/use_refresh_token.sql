-- One atomic step: of two concurrent callers only one finds the token unused.
UPDATE refresh_tokens SET used_at = $2
WHERE id = $1 AND used_at IS NULL AND NOT revoked AND expires_at > $2
RETURNING *
