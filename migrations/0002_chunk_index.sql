-- 0002: what chunk-store needs to index chunks without a read of the log.
-- sha256_state: the running sha256 of the track's stream over chunks
-- 0..durable_seq-1 (OpenSSL's SHA256_CTX, serialised), so End is verified
-- without reading the track again. Rebuilt from the chunk log if lost.
ALTER TABLE tracks ADD COLUMN sha256_state bytea;
-- end_failure: why the last End was refused (shown by status requests).
ALTER TABLE tracks ADD COLUMN end_failure text;
-- purged_seq: chunks 1..purged_seq-1 were deleted from the chunk log after
-- they were committed (uploaded); chunk 0 (the container header) and the
-- newest chunk stay until the track is muxed.
ALTER TABLE tracks ADD COLUMN purged_seq bigint NOT NULL DEFAULT 0 CHECK (purged_seq >= 0);
-- log_released: every chunk of the track left the chunk log (uploaded and
-- muxed); reads then come from the object store.
ALTER TABLE tracks ADD COLUMN log_released boolean NOT NULL DEFAULT false;
