-- A contribution may live outside its row (PostgreSQL stores keep blobs in
-- a directory): `blob` names it there, and `payload` is then empty.
ALTER TABLE contributions ADD COLUMN blob TEXT NOT NULL DEFAULT '';
