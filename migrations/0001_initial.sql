-- 0001_initial.sql -- the Sea Shore schema (PostgreSQL 15).
--
-- Applied by tools/migrate (seashore-migrate) in one transaction. Forward
-- only: once applied, this file never changes; add 0002_... instead.
--
-- Ownership: token-issuer writes hosts, api_keys, sessions, participants and
-- creates tracks; chunk-store writes chunks and the tracks' durable/committed
-- points; r2-uploader writes uploads and upload_parts; muxer writes outputs
-- and session_manifests. Deleting a session deletes everything below it.
-- States are text with CHECK constraints (readable in psql and in logs);
-- sizes, offsets and sequence numbers are bigint; hashes are raw bytes.

CREATE TABLE hosts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id text UNIQUE,
    email         text,
    display_name  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE hosts IS 'People who own sessions (the studio''s hosts).';
COMMENT ON COLUMN hosts.clerk_user_id IS
    'Clerk user id (JWT sub) when the host signs in with Clerk; NULL for API-key-only hosts.';

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host_id      uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL UNIQUE,
    key_hash     bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_host_id_idx ON api_keys (host_id);
COMMENT ON TABLE api_keys IS 'API keys of hosts; the secret itself is never stored.';
COMMENT ON COLUMN api_keys.prefix IS
    'The first characters of the key, shown to users and used to find the row.';
COMMENT ON COLUMN api_keys.key_hash IS 'sha256 of the whole secret key.';
COMMENT ON COLUMN api_keys.revoked_at IS 'Set when revoked; a revoked key authenticates nothing.';

CREATE TABLE sessions (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host_id    uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    title      text NOT NULL DEFAULT '',
    state      text NOT NULL DEFAULT 'open'
               CHECK (state IN ('open', 'ended', 'deleting', 'deleted')),
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    deleted_at timestamptz
);
CREATE INDEX sessions_host_id_created_at_idx ON sessions (host_id, created_at DESC);
COMMENT ON TABLE sessions IS 'A recording session (one call) of a host.';
COMMENT ON COLUMN sessions.state IS
    'open: recording allowed; ended: no new tracks; deleting: objects being removed from the '
    'store; deleted: gone from the store, row kept for the record.';

CREATE TABLE participants (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    display_name text NOT NULL DEFAULT '',
    identity     text NOT NULL,
    role         text NOT NULL CHECK (role IN ('host', 'guest')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, identity),
    UNIQUE (session_id, id) -- target of tracks' (session_id, participant_id)
);
COMMENT ON TABLE participants IS 'People recorded in a session.';
COMMENT ON COLUMN participants.identity IS
    'Stable identity within the session (LiveKit identity), the subject of ingest tokens.';

CREATE TABLE tracks (
    id                    uuid PRIMARY KEY,
    session_id            uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    participant_id        uuid NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('audio', 'video', 'audio_video')),
    mime_type             text NOT NULL,
    ext                   text NOT NULL,
    state                 text NOT NULL DEFAULT 'recording'
                          CHECK (state IN ('recording', 'ended', 'complete', 'failed')),
    durable_seq           bigint NOT NULL DEFAULT 0 CHECK (durable_seq >= 0),
    durable_bytes         bigint NOT NULL DEFAULT 0 CHECK (durable_bytes >= 0),
    committed_seq         bigint NOT NULL DEFAULT 0 CHECK (committed_seq >= 0),
    committed_bytes       bigint NOT NULL DEFAULT 0 CHECK (committed_bytes >= 0),
    chunk_count           bigint CHECK (chunk_count >= 0),
    total_bytes           bigint CHECK (total_bytes >= 0),
    sha256                bytea CHECK (octet_length(sha256) = 32),
    capture_start_unix_us bigint,
    clock_offset_us       bigint,
    duration_us           bigint CHECK (duration_us >= 0),
    part_size             bigint NOT NULL DEFAULT 8388608 CHECK (part_size > 0),
    failure               text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    ended_at              timestamptz,
    completed_at          timestamptz,
    FOREIGN KEY (session_id, participant_id)
        REFERENCES participants (session_id, id) ON DELETE CASCADE
);
CREATE INDEX tracks_session_id_idx ON tracks (session_id);
CREATE INDEX tracks_participant_id_idx ON tracks (participant_id);
CREATE INDEX tracks_state_idx ON tracks (state) WHERE state IN ('recording', 'ended');
COMMENT ON TABLE tracks IS
    'One recorded stream of a participant: its raw bytes are the concatenation of its chunks.';
COMMENT ON COLUMN tracks.id IS 'Chosen by the client, so that a resend after a crash is idempotent.';
COMMENT ON COLUMN tracks.ext IS 'File extension of the raw object (webm, mp4...).';
COMMENT ON COLUMN tracks.durable_seq IS
    'The next chunk seq not yet durable in the chunk log (every seq below it is: Ack).';
COMMENT ON COLUMN tracks.durable_bytes IS 'Bytes of the chunks below durable_seq.';
COMMENT ON COLUMN tracks.committed_seq IS
    'The next chunk seq not yet wholly inside parts the object store accepted (Committed).';
COMMENT ON COLUMN tracks.committed_bytes IS 'Bytes below committed_seq: in the object store.';
COMMENT ON COLUMN tracks.chunk_count IS 'Set when the client ends the track: its number of chunks.';
COMMENT ON COLUMN tracks.total_bytes IS 'Set when the client ends the track: its length in bytes.';
COMMENT ON COLUMN tracks.sha256 IS 'sha256 of the whole raw track, checked end to end.';
COMMENT ON COLUMN tracks.capture_start_unix_us IS
    'When the client started capturing, on its own clock (microseconds since the epoch).';
COMMENT ON COLUMN tracks.clock_offset_us IS
    'Server clock minus client clock, measured over the websocket; aligns tracks on one timeline.';
COMMENT ON COLUMN tracks.part_size IS
    'Multipart part size, fixed per track: part N is bytes [N*part_size, (N+1)*part_size).';
COMMENT ON COLUMN tracks.failure IS 'Why the track failed (state failed).';

CREATE TABLE chunks (
    track_id    uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq >= 0),
    byte_offset bigint NOT NULL CHECK (byte_offset >= 0),
    size        int NOT NULL CHECK (size >= 0),
    sha256      bytea NOT NULL CHECK (octet_length(sha256) = 32),
    stream_seq  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track_id, seq)
);
CREATE INDEX chunks_track_id_byte_offset_idx ON chunks (track_id, byte_offset);
COMMENT ON TABLE chunks IS
    'The chunk index: where each chunk of a track sits in the raw byte stream and in the log.';
COMMENT ON COLUMN chunks.byte_offset IS 'Offset of the chunk''s first byte in the raw track.';
COMMENT ON COLUMN chunks.sha256 IS 'sha256 of the chunk: a resend with other bytes is refused.';
COMMENT ON COLUMN chunks.stream_seq IS
    'JetStream sequence of the message holding the chunk (CHUNKS stream).';

CREATE TABLE uploads (
    track_id      uuid PRIMARY KEY REFERENCES tracks (id) ON DELETE CASCADE,
    object_key    text NOT NULL,
    upload_id     text,
    part_size     bigint NOT NULL CHECK (part_size > 0),
    state         text NOT NULL DEFAULT 'uploading'
                  CHECK (state IN ('uploading', 'completed', 'failed', 'aborted')),
    error_code    text,
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX uploads_state_idx ON uploads (state) WHERE state = 'uploading';
COMMENT ON TABLE uploads IS 'The S3 multipart upload of a track''s raw object (one per track).';
COMMENT ON COLUMN uploads.object_key IS 'raw/<session>/<participant>/<track>.<ext>';
COMMENT ON COLUMN uploads.upload_id IS
    'UploadId from CreateMultipartUpload; NULL until the store answered.';
COMMENT ON COLUMN uploads.error_code IS 'S3 error code of the failure (state failed).';

CREATE TABLE upload_parts (
    track_id    uuid NOT NULL REFERENCES uploads (track_id) ON DELETE CASCADE,
    part_number int NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    byte_offset bigint NOT NULL CHECK (byte_offset >= 0),
    size        bigint NOT NULL CHECK (size > 0),
    etag        text NOT NULL,
    md5         bytea CHECK (octet_length(md5) = 16),
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track_id, part_number)
);
COMMENT ON TABLE upload_parts IS
    'Parts the object store accepted; an uploader restart resumes after them.';
COMMENT ON COLUMN upload_parts.part_number IS 'S3 part number, 1-based: bytes from (n-1)*part_size.';
COMMENT ON COLUMN upload_parts.etag IS 'ETag the store returned, needed by CompleteMultipartUpload.';
COMMENT ON COLUMN upload_parts.md5 IS 'MD5 of the part as sent (Content-MD5).';

CREATE TABLE outputs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    track_id       uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('webm', 'mp4', 'wav')),
    state          text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
    object_key     text,
    size_bytes     bigint CHECK (size_bytes >= 0),
    sha256         bytea CHECK (octet_length(sha256) = 32),
    duration_us    bigint CHECK (duration_us >= 0),
    codecs         text,
    width          int,
    height         int,
    sample_rate    int,
    channels       int,
    failure_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (track_id, kind)
);
COMMENT ON TABLE outputs IS 'Editor files the muxer makes from a raw track.';
COMMENT ON COLUMN outputs.state IS
    'skipped: this kind does not apply (e.g. mp4 of codecs it cannot hold without transcoding).';
COMMENT ON COLUMN outputs.object_key IS 'muxed/<session>/<participant>/<track>.<kind>';
COMMENT ON COLUMN outputs.codecs IS 'RFC 6381 codecs string, e.g. avc1.42E01E,mp4a.40.2.';
COMMENT ON COLUMN outputs.failure_reason IS 'Why muxing failed (state failed); the raw track stays.';

CREATE TABLE session_manifests (
    session_id uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    object_key text NOT NULL,
    manifest   jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE session_manifests IS
    'The last manifest written for a session: tracks, offsets, durations, codecs, sizes, sha256.';
COMMENT ON COLUMN session_manifests.object_key IS 'manifests/<session>.json';
