-- Leases that ran out: back to pending, or failed once out of attempts.
-- SKIP LOCKED so a worker completing an item at this moment wins.
UPDATE queue SET
    status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    next_attempt_at = CASE WHEN attempts < max_attempts THEN $1 ELSE next_attempt_at END,
    download_date = CASE WHEN attempts < max_attempts THEN download_date ELSE $1 END,
    error_message = CASE WHEN attempts < max_attempts THEN error_message
        ELSE 'worker stopped responding (lease expired) after ' || attempts || ' attempt(s)' END,
    estimated_completion = NULL,
    lease_token = NULL, lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM queue
    WHERE status = 'downloading' AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
    FOR UPDATE SKIP LOCKED
)
RETURNING *
