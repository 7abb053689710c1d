-- Who vouched for an upload's facts: 'client' (the uploader's JWT callback) or
-- 'cloud-callback' (a callback signed by the cloud). A cloud's facts replace a client's
-- claim; a client's claim never replaces the cloud's.
ALTER TABLE objects ADD COLUMN verified_by TEXT;
