UPDATE queue SET lease_expires_at = $4
WHERE id = $1 AND lease_token = $2 AND assigned_worker = $3 AND status = 'downloading'
