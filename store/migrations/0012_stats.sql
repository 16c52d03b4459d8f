-- The console's statistics (store/stats.py): the month's cases are found by when they
-- arrive, fall due (the partial indexes of 0010) and close, each range on an index.
CREATE INDEX cases_closed ON cases (closed_at);
