// protocol.js -- the recorder protocol's frames (docs/protocol.md), encoded
// and decoded by protobufjs from the same .proto files the services compile
// (copied to /vendor/proto by scripts/web-build.sh). Works in a page and in
// a module worker.

let rootPromise = null;

async function loadProtobuf() {
  if (!globalThis.protobuf) await import('/vendor/protobuf.min.js'); // UMD: sets globalThis.protobuf
  if (!globalThis.protobuf) throw new Error('protobufjs did not load from /vendor/protobuf.min.js');
  return globalThis.protobuf;
}

export function loadProtocol() {
  if (!rootPromise) {
    rootPromise = (async () => {
      const pb = await loadProtobuf();
      const root = await pb.load('/vendor/proto/ingest.proto');
      return {
        ClientFrame: root.lookupType('seashore.v1.ClientFrame'),
        ServerFrame: root.lookupType('seashore.v1.ServerFrame'),
        TrackKind: root.lookupEnum('seashore.v1.TrackKind').values,
        ErrorCode: root.lookupEnum('seashore.v1.ErrorCode').values,
      };
    })();
  }
  return rootPromise;
}

// frame: a ClientFrame object with one member set, e.g. { hello: {...} }.
export function encodeClient(p, frame) {
  const err = p.ClientFrame.verify(frame);
  if (err) throw new Error(`ClientFrame: ${err}`);
  return p.ClientFrame.encode(p.ClientFrame.create(frame)).finish();
}

// The ServerFrame as a plain object: 64-bit numbers as Numbers, bytes as
// Uint8Array, enums as their names, and `kind` naming the member set.
export function decodeServer(p, bytes) {
  const msg = p.ServerFrame.decode(new Uint8Array(bytes));
  return p.ServerFrame.toObject(msg, { longs: Number, enums: String, defaults: true, oneofs: true });
}

export const KIND_VALUES = { audio: 'TRACK_KIND_AUDIO', video: 'TRACK_KIND_VIDEO', audio_video: 'TRACK_KIND_AUDIO_VIDEO' };
