-- Buildings may have an English name and address (import columns name_en, address_en):
-- residents writing in English find them, and English messages show them.

ALTER TABLE buildings ADD COLUMN name_en TEXT;
ALTER TABLE buildings ADD COLUMN address_en TEXT;
