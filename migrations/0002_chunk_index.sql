-- 0002: what chunk-store needs to index chunks without a read of the log.
-- sha256_state: the running sha256 of the track's stream over chunks
-- 0..durable_seq-1 (OpenSSL's SHA256_CTX, serialised), so End is verified
-- without reading the track again. Rebuilt from the chunk log if lost.
ALTER TABLE tracks ADD COLUMN sha256_state bytea;
-- end_failure: why the last End was refused (shown by status requests).
ALTER TABLE tracks ADD COLUMN end_failure text;
