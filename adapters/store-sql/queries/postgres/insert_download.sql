INSERT INTO downloads (
    url, url_hash, archive_key, platform, source, content_type, filename, file_path,
    file_size, file_hash, post_date, download_date, status, attempts, error_message,
    duplicate_of, queue_id, metadata
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
RETURNING *
