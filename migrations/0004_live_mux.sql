-- 0004: live muxing. The muxer makes a track's editor files while the track
-- is still being recorded (reading the chunk log as it grows), so that when
-- the guest stops only the tail remains. One muxer claims a recording track
-- (live_mux_state NULL -> running) and reports every few seconds
-- (live_mux_beat); the work item that arrives when the raw object is
-- complete skips a track whose live files are done and still aligned, waits
-- while a live job reports, and otherwise makes the files itself.
ALTER TABLE tracks ADD COLUMN live_mux_state text
    CHECK (live_mux_state IN ('running', 'done', 'failed'));
ALTER TABLE tracks ADD COLUMN live_mux_beat timestamptz;
-- How far the live job has read the raw stream: chunk-store keeps committed
-- chunks past this in the chunk log while the job reports (up to a bound, so
-- that a slow muxer never holds back a recording).
ALTER TABLE tracks ADD COLUMN live_mux_read_bytes bigint NOT NULL DEFAULT 0
    CHECK (live_mux_read_bytes >= 0);
COMMENT ON COLUMN tracks.live_mux_state IS
    'Live muxing: running (claimed by a muxer), done (outputs made while recording), failed (left to the work item); NULL never tried.';
COMMENT ON COLUMN tracks.live_mux_beat IS 'When the live muxing job last reported.';
COMMENT ON COLUMN tracks.live_mux_read_bytes IS
    'Bytes of the raw stream every pass of the live job has read (chunk-store keeps the rest).';
