-- Gives the attempt back: the item did not really run.
UPDATE queue SET
    status = 'pending',
    attempts = GREATEST(attempts - 1, 0),
    next_attempt_at = $4,
    error_message = $5,
    estimated_completion = NULL,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = $1 AND lease_token = $2 AND assigned_worker = $3 AND status = 'downloading'
RETURNING *
