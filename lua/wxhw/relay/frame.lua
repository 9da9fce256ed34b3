--- Device framing in Lua (layout of csrc/media/media.h `wm_frame_hdr`, see
-- docs/call-worker.md): a 16-byte big-endian header then the payload.
--
--   0  magic 0x57 ('W')   1  version 1   2  type   3  flags
--   4  stream (u16)        6  seq (u16)   8  ts_ms (u32)   12  len (u32)
--
-- Used between wxhw and call workers (media one way, control both ways) and
-- as the device → wxhw TCP channel. Pure Lua so workers and tests need no
-- C; the C deframer (wm_deframer) follows the same layout.
local byte, char, sub = string.byte, string.char, string.sub
local floor = math.floor

local M = {}

M.MAGIC, M.VERSION, M.HDR = 0x57, 1, 16
M.MAX_LEN = 4 * 1024 * 1024

-- media types
M.H264, M.H265 = 1, 2
M.PCM16K, M.G711A, M.G711U, M.PCM8K = 16, 17, 18, 19
M.CONTROL = 0x70 -- JSON control message (stream 0)

-- flags (WM_F_*)
M.F_KEY, M.F_GAP, M.F_CONFIG, M.F_EOS = 2, 4, 8, 16

local function u16(n) return char(floor(n / 256) % 256, n % 256) end
local function u32(n)
  return char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

--- Encodes one frame.
function M.encode(ftype, flags, stream, seq, ts_ms, payload)
  payload = payload or ""
  if #payload > M.MAX_LEN then error("frame.encode: payload too large", 2) end
  return char(M.MAGIC, M.VERSION, ftype % 256, (flags or 0) % 256) .. u16((stream or 0) % 65536) ..
      u16((seq or 0) % 65536) .. u32(floor(ts_ms or 0) % 4294967296) .. u32(#payload) .. payload
end

--- Incremental decoder: d:push(bytes) --> list of frames
-- { type, flags, stream, seq, ts, data } or nil, reason (the stream is then
-- unusable: resynchronising on a byte stream would guess).
local Decoder = {}
Decoder.__index = Decoder

function M.decoder(max_len)
  return setmetatable({ buf = "", max_len = max_len or M.MAX_LEN, failed = nil }, Decoder)
end

function Decoder:push(bytes)
  if self.failed then return nil, self.failed end
  if bytes and #bytes > 0 then self.buf = self.buf .. bytes end
  local out, pos, buf = {}, 1, self.buf
  while #buf - pos + 1 >= M.HDR do
    local m, v, t, f, s1, s2, q1, q2, t1, t2, t3, t4, l1, l2, l3, l4 = byte(buf, pos, pos + 15)
    if m ~= M.MAGIC or v ~= M.VERSION then
      self.failed = ("bad frame header (magic %d version %d)"):format(m, v)
      return nil, self.failed
    end
    local len = ((l1 * 256 + l2) * 256 + l3) * 256 + l4
    if len > self.max_len then
      self.failed = "frame length " .. len .. " exceeds the limit"
      return nil, self.failed
    end
    if #buf - pos + 1 < M.HDR + len then break end
    out[#out + 1] = { type = t, flags = f, stream = s1 * 256 + s2, seq = q1 * 256 + q2,
                      ts = ((t1 * 256 + t2) * 256 + t3) * 256 + t4,
                      data = sub(buf, pos + M.HDR, pos + M.HDR + len - 1) }
    pos = pos + M.HDR + len
  end
  self.buf = sub(buf, pos)
  return out
end

function Decoder:pending() return #self.buf end

--- Control messages are JSON objects in CONTROL frames on stream 0.
local cjson = require "cjson.safe"
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
