INSERT INTO jobs (
    id, name, kind, platform, source, content_type, schedule, timezone, enabled, catch_up,
    config, monitor_until, last_run, last_run_status, last_run_items, next_run, last_slot,
    total_runs, success_count, failure_count, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
          $19, $20, $21, $22)
RETURNING *
