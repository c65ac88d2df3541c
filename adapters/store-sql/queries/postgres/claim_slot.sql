-- Exactly one caller across every process wins a slot: the conditional
-- UPDATE takes the row lock, and a second caller re-checks `last_slot`
-- after the first commits and finds nothing to update.
-- Returns true when this caller took the slot, false when another did,
-- no row when the job does not exist.
WITH taken AS (
    UPDATE jobs SET last_slot = $2, next_run = $3
    WHERE id = $1 AND (last_slot IS NULL OR last_slot < $2)
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM taken) FROM jobs WHERE id = $1
