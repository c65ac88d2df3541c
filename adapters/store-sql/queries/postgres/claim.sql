-- Takes up to $4 due items in one statement. SKIP LOCKED lets concurrent
-- claimers pass over rows another transaction is taking, so no two
-- workers ever get the same item and none waits for another.
UPDATE queue SET
    status = 'downloading',
    attempts = attempts + 1,
    started_at = $1,
    assigned_worker = $2,
    lease_expires_at = $3,
    lease_token = gen_random_uuid()
WHERE id IN (
    SELECT id FROM queue
    WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY priority, created_date, id
    FOR UPDATE SKIP LOCKED
    LIMIT $4
)
RETURNING *
