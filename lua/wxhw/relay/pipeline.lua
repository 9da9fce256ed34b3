--- One device's media on its way to a call worker:
--
--   video: framed H.264 access units, or RTP (reordered by media.receiver,
--          depacketised by media.depacketizer) --> IDR gating (only while
--          TALKING; after a loss wait for the next IDR) with cached SPS/PPS
--   audio: G.711 µ/A-law or PCM 8 kHz --> PCM 16 kHz (media.resampler)
--          --> exact 20 ms frames (media.framer, silence for gaps)
--   both:  a jitter buffer releasing each frame at its timestamp + delay
--          (p:poll(now)), encoded in the device framing for the worker.
local media = require "wxhw.media"
local frame = require "wxhw.media.frame"

local M = {}
M.__index = M

local VIDEO_STREAM, AUDIO_STREAM = 0, 1
M.VIDEO_STREAM, M.AUDIO_STREAM = VIDEO_STREAM, AUDIO_STREAM
local SC = "\0\0\0\1"

--- opts: jitter_ms (60), max_queue (500 frames), clock (function: seconds).
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    jitter = (opts.jitter_ms or 60) / 1000, max_queue = opts.max_queue or 500,
    talking = false, need_key = true, sps = nil, pps = nil, vseq = 0, aseq = 0,
    queue = {}, qhead = 1, qtail = 0, base = nil, last_in_vseq = nil,
    buf = media.buffer(), abuf = media.buffer(),
    stats = { video_in = 0, video_out = 0, dropped_not_talking = 0, dropped_waiting_key = 0,
              audio_in = 0, audio_out = 0, gaps = 0, overflow = 0, late_in = 0 },
  }, M)
  self.framer = media.framer{ rate = 16000, ms = 20 }
  self.resampler = media.resampler(8000, 16000)
  return self
end

--- The call reached TALKING (true) or left it (false). Media before
-- TALKING is dropped; the video restarts at an IDR each time.
function M:set_talking(on)
  if on and not self.talking then self.need_key, self.base, self.mark_gap = true, nil, false end
  self.talking = on and true or false
  if not on then self.queue, self.qhead, self.qtail = {}, 1, 0 end
end

local function enqueue(self, due, bytes)
  local q = self.queue
  if self.qtail - self.qhead + 1 >= self.max_queue then
    self.stats.overflow = self.stats.overflow + 1
    return
  end
  -- frames arrive nearly in due order: shift from the tail
  local i = self.qtail
  while i >= self.qhead and q[i][1] > due do q[i + 1] = q[i]; i = i - 1 end
  q[i + 1] = { due, bytes }
  self.qtail = self.qtail + 1
end

local function due_of(self, ts_ms, now)
  local b = self.base
  if not b or math.abs((ts_ms - b[2]) / 1000 - (now - b[1])) > 5 then
    -- first frame, or the device clock jumped: rebase
    b = { now + self.jitter, ts_ms }
    self.base = b
  end
  local due = b[1] + (ts_ms - b[2]) / 1000
  if due < now then self.stats.late_in = self.stats.late_in + 1; due = now end
  return due
end

--- One H.264 access unit (Annex-B). `gap`: data was lost before it.
function M:video_au(au, ts_ms, gap, now)
  self.stats.video_in = self.stats.video_in + 1
  local nals = media.nals(au)
  local has_idr, has_sps, has_pps = false, false, false
  for _, n in ipairs(nals) do
    local t = media.nal_type(n)
    if t == 7 then self.sps, has_sps = n, true
    elseif t == 8 then self.pps, has_pps = n, true
    elseif t == 5 then has_idr = true end
  end
  if not self.talking then self.stats.dropped_not_talking = self.stats.dropped_not_talking + 1; return end
  if gap then
    self.need_key, self.mark_gap = true, true
    self.stats.gaps = self.stats.gaps + 1
  end
  if self.need_key then
    if not has_idr or not (self.sps and self.pps) then
      self.stats.dropped_waiting_key = self.stats.dropped_waiting_key + 1
      return
    end
    if not (has_sps and has_pps) then au = SC .. self.sps .. SC .. self.pps .. au end
    self.need_key = false
  end
  local flags = (has_idr and frame.F_KEY or 0) + (self.mark_gap and frame.F_GAP or 0)
  self.mark_gap = false
  self.vseq = (self.vseq + 1) % 65536
  self.stats.video_out = self.stats.video_out + 1
  enqueue(self, due_of(self, ts_ms, now), frame.encode(frame.H264, flags, VIDEO_STREAM, self.vseq, ts_ms, au))
end

--- Audio: kind "pcmu" | "pcma" | "pcm8k" | "pcm16k", at device time ts_ms.
function M:audio(kind, data, ts_ms, now)
  self.stats.audio_in = self.stats.audio_in + 1
  if not self.talking then return end
  local pcm
  if kind == "pcmu" or kind == "pcma" then
    pcm = self.resampler:process(media.g711_decode(data, kind == "pcmu" and "ulaw" or "alaw"))
  elseif kind == "pcm8k" then
    pcm = self.resampler:process(data)
  elseif kind == "pcm16k" then
    pcm = data
  else
    error("pipeline:audio: unknown audio kind " .. tostring(kind), 2)
  end
  if self.audio_origin == nil then self.audio_origin = ts_ms end
  local at = math.floor((ts_ms - self.audio_origin) * 16 + 0.5)
  local n = self.framer:push(pcm, at, self.abuf)
  if not n then return end
  for i = 1, n do
    local m = self.abuf:meta(i)
    local ts = self.audio_origin + math.floor(m.ts / 16)
    self.aseq = (self.aseq + 1) % 65536
    self.stats.audio_out = self.stats.audio_out + 1
    enqueue(self, due_of(self, ts, now), frame.encode(frame.PCM16K, 0, AUDIO_STREAM, self.aseq, ts, self.abuf:get(i)))
  end
end

--- A device-framing record from the device channel (wxhw.media.frame table).
function M:device_frame(fr, now)
  local gap = fr.gap
  if fr.type == frame.H264 then
    local last = self.last_in_vseq
    if last and fr.seq ~= (last + 1) % 65536 then gap = true end
    self.last_in_vseq = fr.seq
    return self:video_au(fr.data, fr.ts, gap, now)
  end
  local kind = media.FRAME_TYPE_NAMES[fr.type]
  if kind == "pcmu" or kind == "pcma" or kind == "pcm8k" or kind == "pcm16k" then
    return self:audio(kind, fr.data, fr.ts, now)
  end
  -- other types (control, keepalive, unsupported codecs) are not media for the worker
end

--- RTP packets (H.264, payload type per the session), reordered first.
function M:rtp_video(packet, now)
  if not self.rx then
    self.rx = media.receiver{ window = 64 }
    self.dp = media.depacketizer{ codec = "h264", wait_keyframe = true }
    self.rtp_buf, self.au_buf = media.buffer(), media.buffer()
  end
  local n = self.rx:push(packet, self.rtp_buf)
  for i = 1, (n or 0) do
    local pkt = self.rtp_buf:get(i)
    local before = self.dp:stats().gaps
    local k = self.dp:push(pkt, self.au_buf)
    -- the depacketiser drops until the next key frame; the worker still
    -- needs to know the stream was cut, on the first access unit after it
    if self.dp:stats().gaps > before then self.rtp_gap = true end
    for j = 1, (k or 0) do
      local m = self.au_buf:meta(j)
      self:video_au(self.au_buf:get(j), math.floor(m.ts / 90), self.rtp_gap, now)
      self.rtp_gap = false
    end
  end
end

--- RTP audio packets: G.711 (PT 0 µ-law, PT 8 A-law, 8 kHz clock), reordered first.
function M:rtp_audio(packet, now, kind)
  if not self.arx then self.arx, self.arx_buf = media.receiver{ window = 32 }, media.buffer() end
  local n = self.arx:push(packet, self.arx_buf)
  for i = 1, (n or 0) do
    local h = media.rtp_parse(self.arx_buf:get(i))
    if h then
      local k = kind or (h.pt == 8 and "pcma" or "pcmu")
      self:audio(k, h.payload, math.floor(h.ts / 8), now)
    end
  end
end

--- Frames due at `now` (seconds, same clock as the inputs), as encoded bytes.
function M:poll(now)
  local out, q = {}, self.queue
  while self.qhead <= self.qtail and q[self.qhead][1] <= now do
    out[#out + 1] = q[self.qhead][2]
    q[self.qhead] = nil
    self.qhead = self.qhead + 1
  end
  if self.qhead > self.qtail then self.qhead, self.qtail = 1, 0 end
  return out
end

function M:__tostring()
  return ("wxhw.relay.Pipeline(%s, %d queued, video %d/%d, audio %d/%d)"):format(self.talking and "talking" or "idle",
    self:queued(), self.stats.video_out, self.stats.video_in, self.stats.audio_out, self.stats.audio_in)
end

function M:queued() return self.qtail - self.qhead + 1 end

--- Time of the next due frame, or nil.
function M:next_due()
  local e = self.queue[self.qhead]
  return e and e[1]
end

return M
