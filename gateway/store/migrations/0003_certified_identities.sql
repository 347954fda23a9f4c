-- 0003: who a party is comes from its certificate. The organisation counts
-- towards min_parties (two certificates of one organisation are one holder);
-- the serial lets a revocation remove the party's listings even while it is
-- offline. A job keeps the buyer's signed body, sent to every holder as is;
-- a task keeps the holder's signed receipt for what it contributed, passed
-- on to the buyer.
ALTER TABLE parties ADD COLUMN organisation TEXT NOT NULL DEFAULT '';
ALTER TABLE parties ADD COLUMN serial TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN signed BLOB NOT NULL DEFAULT x'';
ALTER TABLE tasks ADD COLUMN receipt BLOB NOT NULL DEFAULT x'';
