-- Completes a batch in one statement (one commit, one WAL flush). Each row
-- of the batch carries its own lease, checked exactly as complete.sql
-- does: a row whose lease is gone matches nothing and is not returned.
UPDATE queue SET
    status = 'completed', download_date = done.finished_at, progress = 100,
    items_downloaded = done.items_downloaded,
    error_message = NULL, estimated_completion = NULL,
    lease_token = NULL, lease_expires_at = NULL
FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::timestamptz[], $5::integer[])
    AS done (id, token, worker, finished_at, items_downloaded)
WHERE queue.id = done.id AND queue.lease_token = done.token
  AND queue.assigned_worker = done.worker AND queue.status = 'downloading'
RETURNING queue.*, done.token AS completed_token, done.worker AS completed_worker
