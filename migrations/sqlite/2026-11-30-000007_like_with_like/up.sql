-- Figures that mean what they say: per-fold series get names that can't be taken for a
-- summary, rollbacks are marked so that repeated ones walk back the history, and each logged
-- prediction says how many rows its request scored (its latency is the request's).
-- Mirrored in both backends' folders; keep them in step.

UPDATE run_metrics SET name = 'cv_fold_' || substr(name, 4)
WHERE name IN ('cv_accuracy', 'cv_precision', 'cv_recall', 'cv_f1', 'cv_roc_auc', 'cv_pr_auc',
               'cv_log_loss', 'cv_brier');

ALTER TABLE stage_transitions ADD COLUMN rollback BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE predictions ADD COLUMN batch_rows INTEGER NOT NULL DEFAULT 1;
