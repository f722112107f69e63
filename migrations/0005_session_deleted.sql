-- 0005: a deleted session reaches 'deleted'. Deleting is done by two
-- services: r2-uploader aborts the session's multipart uploads and deletes
-- its raw objects, the muxer deletes its editor files and manifest. Each
-- records when its share is done; the second of the two moves the session
-- from deleting to deleted (one UPDATE each, so whichever commits last sees
-- the other's column). A removal that fails for good records nothing and
-- leaves the session deleting, which the operator can see.
ALTER TABLE sessions ADD COLUMN raw_removed_at timestamptz;
ALTER TABLE sessions ADD COLUMN files_removed_at timestamptz;
COMMENT ON COLUMN sessions.raw_removed_at IS
    'Deleting: when r2-uploader had aborted every upload and deleted every raw object.';
COMMENT ON COLUMN sessions.files_removed_at IS
    'Deleting: when the muxer had deleted every editor file and the manifest.';
COMMENT ON COLUMN sessions.deleted_at IS 'When the session reached deleted.';
