-- The backend's side of an objectId: the states `consumed` (attached once by the service that
-- received it) and `rejected` (an upload that broke a rule the cloud could not enforce), and
-- when and for what the object was consumed.
ALTER TABLE objects DROP CONSTRAINT objects_status_check;
ALTER TABLE objects ADD CONSTRAINT objects_status_check
    CHECK (status IN ('issued', 'uploaded', 'failed', 'expired', 'rejected', 'consumed'));
ALTER TABLE objects ADD COLUMN consumed_at BIGINT;
ALTER TABLE objects ADD COLUMN consumed_ref TEXT;
