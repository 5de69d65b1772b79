/** The wire: tensor frames, peer connections, link measurement, link emulation. */
export {
  ALIGN,
  DTYPE_SIZE,
  DTYPES,
  FRAME_KINDS,
  FRAME_VERSION,
  PREFIX_BYTES,
  decodeFrame,
  encodeFrame,
  tensorBytes,
  type DecodedFrame,
  type DecodeOptions,
  type Dtype,
  type EncodedFrame,
  type EncodeOptions,
  type FrameError,
  type FrameHeader,
  type FrameKind,
  type HeaderInput,
  type RouteStage,
  type Tensor,
  type TensorData,
  type TensorDesc,
} from './frame.js';
export { TYPED_ARRAY, type TypedArrayConstructor } from './dtype.js';
export { LinkEmulator, checkEmulationSettings, type EmulationSettings } from './emulator.js';
export { LinkMeter, type LinkStats } from './measure.js';
export {
  DEFAULT_TRANSPORT_OPTIONS,
  resolveTransportOptions,
  type TransportOptions,
  type TransportOptionsInput,
} from './options.js';
export { PROTOCOL, type HostIdentity, type PeerIdentity } from './handshake.js';
export { digestsFrom, hostToken, identifyBy, tokenDigest, type Identify } from './identity.js';
export type { ConnectionState, ConnectionStats, FrameHandler, FrameSource, IncomingFrame } from './incoming.js';
export { PeerLink, type LinkDown, type PeerLinkEvents, type PeerLinkOptions } from './peer-link.js';
export { PeerConnection, PeerServer, type PeerServerEvents, type PeerServerOptions } from './peer-server.js';
