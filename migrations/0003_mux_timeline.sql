-- 0003: what the muxer records besides the files themselves.
-- timeline_zero_unix_us: the session time zero (server clock, Unix
-- microseconds) a track's outputs were aligned to: its WAV starts with
-- (track start - zero) of silence. The zero is the earliest start among the
-- session's tracks known when the track was muxed; a track muxed later that
-- started earlier moves it, and the WAVs made against the old zero are made
-- again.
ALTER TABLE outputs ADD COLUMN timeline_zero_unix_us bigint;
-- start_offset_us: where the track starts on the session timeline
-- (track start - timeline_zero_unix_us), exact to the microsecond.
ALTER TABLE outputs ADD COLUMN start_offset_us bigint;
COMMENT ON COLUMN outputs.timeline_zero_unix_us IS
    'Session time zero (server clock, Unix µs) the output was aligned to.';
COMMENT ON COLUMN outputs.start_offset_us IS
    'The track''s start on the session timeline: track start - timeline_zero_unix_us.';
