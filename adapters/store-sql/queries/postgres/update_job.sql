UPDATE jobs SET
    name = $2, kind = $3, platform = $4, source = $5, content_type = $6, schedule = $7,
    timezone = $8, enabled = $9, catch_up = $10, config = $11, monitor_until = $12,
    last_run = $13, last_run_status = $14, last_run_items = $15, next_run = $16,
    last_slot = $17, total_runs = $18, success_count = $19, failure_count = $20,
    created_at = $21, updated_at = $22
WHERE id = $1
RETURNING *
