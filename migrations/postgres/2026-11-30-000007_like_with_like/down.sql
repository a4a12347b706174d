ALTER TABLE predictions DROP COLUMN batch_rows;
ALTER TABLE stage_transitions DROP COLUMN rollback;
UPDATE run_metrics SET name = 'cv_' || substr(name, 9)
WHERE name IN ('cv_fold_accuracy', 'cv_fold_precision', 'cv_fold_recall', 'cv_fold_f1',
               'cv_fold_roc_auc', 'cv_fold_pr_auc', 'cv_fold_log_loss', 'cv_fold_brier');
