-- With a retry time and attempts left: pending again from $5; otherwise failed.
-- The store, not only the caller, guards the attempt budget.
UPDATE queue SET
    error_message = $4,
    estimated_completion = NULL,
    status = CASE WHEN $5::timestamptz IS NOT NULL AND attempts < max_attempts
                  THEN 'pending' ELSE 'failed' END,
    next_attempt_at = CASE WHEN $5::timestamptz IS NOT NULL AND attempts < max_attempts
                           THEN $5 ELSE next_attempt_at END,
    download_date = CASE WHEN $5::timestamptz IS NOT NULL AND attempts < max_attempts
                         THEN download_date ELSE $6 END,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = $1 AND lease_token = $2 AND assigned_worker = $3 AND status = 'downloading'
RETURNING *
