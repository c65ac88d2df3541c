INSERT INTO queue (
    url, platform, source, content_type, referer, save_path, priority, status,
    attempts, max_attempts, created_date, next_attempt_at, options, metadata
) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9, $10, $11)
RETURNING *
