UPDATE queue SET
    status = 'completed', download_date = $4, progress = 100, items_downloaded = $5,
    error_message = NULL, estimated_completion = NULL,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = $1 AND lease_token = $2 AND assigned_worker = $3 AND status = 'downloading'
RETURNING *
