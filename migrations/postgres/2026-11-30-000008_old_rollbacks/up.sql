-- Rollbacks made before stage_transitions.rollback existed are marked from their reasons
-- ("rollback from vN…" on the re-promotion, "replaced by vM: rollback from vN…" on the
-- archiving), so the first rollback after an upgrade walks back instead of toggling. LIKE here
-- and GLOB on SQLite are both case-sensitive, so the two backends mark the same rows (a
-- promotion whose own reason began "rollback from v" is marked too: the old history can't tell).
-- Mirrored in both backends' folders; keep them in step.

UPDATE stage_transitions SET rollback = TRUE
WHERE reason LIKE 'rollback from v%' OR reason LIKE 'replaced by v%: rollback from v%';
