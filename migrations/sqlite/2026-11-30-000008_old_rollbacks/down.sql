-- Nothing to undo: the marks are what the reasons already said.
SELECT 1;
