-- What a case's photo shows: the problem as reported ('before': the resident's photos,
-- those added to the case later) or the result ('after': taken by staff when reporting
-- the work done). Only after-photos are shown to the resident as the result.

ALTER TABLE media ADD COLUMN role TEXT CHECK (role IN ('before', 'after'));

-- Photos already on cases cannot be told apart: none is shown as a result.
UPDATE media SET role = 'before' WHERE case_id IS NOT NULL;
