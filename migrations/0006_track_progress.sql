-- 0006: what each participant's page has recorded, as it reports it. The
-- server knows what it received (tracks.durable_bytes) and uploaded
-- (committed_bytes); only the browser knows what it has recorded and not
-- sent yet (kept in IndexedDB), and the session view shows all three for
-- every participant. A take is reported before its first chunk arrives, so
-- there is no foreign key to tracks; a track id stays with the participant
-- that first reported it.
CREATE TABLE track_progress (
    track_id       uuid PRIMARY KEY,
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    recorded_bytes bigint NOT NULL CHECK (recorded_bytes >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX track_progress_participant_id_idx ON track_progress (participant_id);
COMMENT ON TABLE track_progress IS
    'Bytes each page has recorded per take (POST .../participants/{pid}/progress).';
