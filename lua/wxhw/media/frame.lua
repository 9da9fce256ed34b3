--- Device framing (docs/framing.md) as used between wxhw and call workers:
-- a thin layer over the C framer in wxhw.media that returns frames as Lua
-- tables and adds JSON control messages (type `control`, stream 0).
--
--   frame.encode(type, flags, stream, seq, ts_ms, payload) --> bytes
--   local d = frame.decoder(); d:push(bytes) --> { {type, flags, key, gap, eos,
--                                              stream, seq, ts, data}, ... } | nil, reason
--   frame.control(msg[, seq]) / frame.decode_control(fr)
local media = require "wxhw.media"
local cjson = require "cjson.safe"

local M = {}

local T, F = media.FRAME_TYPES, media.FRAME_FLAGS
M.H264, M.H265, M.PCM16K, M.PCM8K, M.PCMU, M.PCMA = T.h264, T.h265, T.pcm16k, T.pcm8k, T.pcmu, T.pcma
M.CONTROL, M.KEEPALIVE = T.control, T.keepalive
M.F_KEY, M.F_GAP, M.F_EOS = F.key, F.discontinuity, F["end"]
M.HDR, M.MAX_LEN = 16, 4 * 1024 * 1024

function M.encode(ftype, flags, stream, seq, ts_ms, payload)
  return media.frame({ type = ftype, flags = flags or 0, stream = stream or 0, seq = (seq or 0) % 65536,
                       ts = math.floor(ts_ms or 0) % 4294967296 }, payload or "")
end

local Decoder = {}
Decoder.__index = Decoder

function M.decoder(max_len)
  return setmetatable({ d = media.deframer{ max_len = max_len or M.MAX_LEN }, buf = media.buffer() }, Decoder)
end

--- Feeds bytes (any chunking); returns the complete frames, or nil and a
-- reason when the stream is unusable (close the connection).
function Decoder:push(bytes)
  if self.failed then return nil, self.failed end
  local n, err = self.d:push(bytes, self.buf)
  if not n then
    self.failed = err and err.message or tostring(err)
    return nil, self.failed
  end
  local out = {}
  for i = 1, n do
    local m = self.buf:meta(i)
    local flags = (m.key and F.key or 0) + (m.gap and F.discontinuity or 0) + (m.eos and F["end"] or 0)
    out[i] = { type = m.type, flags = flags, key = m.key, gap = m.gap, eos = m.eos, stream = m.stream,
               seq = m.seq, ts = m.ts, data = self.buf:get(i) }
  end
  return out
end

--- Bytes buffered towards the next frame (0 on a frame boundary).
function Decoder:pending() return self.d:pending() end

function M.control(msg, seq)
  return M.encode(M.CONTROL, 0, 0, seq or 0, 0, assert(cjson.encode(msg)))
end

function M.decode_control(fr)
  if fr.type ~= M.CONTROL then return nil end
  local t = cjson.decode(fr.data)
  if type(t) ~= "table" then return nil end
  return t
end

return M
