UPDATE downloads SET
    url = $1, url_hash = $2, archive_key = $3, platform = $4, source = $5,
    content_type = $6, filename = $7, file_path = $8, file_size = $9, file_hash = $10,
    post_date = $11, download_date = $12, status = $13, attempts = $14,
    error_message = $15, duplicate_of = $16, queue_id = $17, metadata = $18
WHERE id = $19
RETURNING *
