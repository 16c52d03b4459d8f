-- The console's statistics (bot/services/stats.py, store/stats.py): the month's cases are
-- found by when they fall due and when they close, each range on its own index.
CREATE INDEX cases_deadline ON cases (deadline);
CREATE INDEX cases_closed ON cases (closed_at);
