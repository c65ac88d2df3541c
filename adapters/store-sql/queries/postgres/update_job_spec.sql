-- A new definition of job $1; $13 true keeps the stored `next_run`,
-- otherwise it becomes $14 (NULL whenever the job is disabled). The slot,
-- the counters and `last_run*` are not written: a definition read before
-- another scheduler claimed a slot cannot re-open it.
UPDATE jobs SET
    name = $2, kind = $3, platform = $4, source = $5, content_type = $6, schedule = $7,
    timezone = $8, enabled = $9, catch_up = $10, config = $11, monitor_until = $12,
    next_run = CASE WHEN NOT $9 THEN NULL WHEN $13 THEN next_run ELSE $14 END,
    updated_at = $15
WHERE id = $1
RETURNING *
