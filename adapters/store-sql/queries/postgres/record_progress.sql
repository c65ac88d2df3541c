UPDATE queue SET progress = $4, items_downloaded = $5, items_total = $6, estimated_completion = $7
WHERE id = $1 AND lease_token = $2 AND assigned_worker = $3 AND status = 'downloading'
