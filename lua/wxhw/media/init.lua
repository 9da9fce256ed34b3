--- wxhw.media: media-frame packing (RTP, FLV, device framing, PCM).
-- The engines are C (csrc/media/); this façade re-exports them and adds Lua
-- conveniences. Every packer/parser call resets the wxhw.media.Buffer it is
-- given and returns how many items (packets or frames) it now holds:
--
--   local buf = media.buffer()
--   local pk = media.packetizer{ codec = "h264", mtu = 1200, pt = 96 }
--   local n = pk:pack(access_unit, rtp_ts, buf)
--   for i = 1, n do sock:send(buf:get(i)) end      -- or: for i, pkt in buf:items()
local core = require "wxhw.core"

local C = core.media
local M = {}
for k, v in pairs(C) do M[k] = v end

-- Methods written in Lua are interposed on the C classes' method tables.
local function methods_of(obj) return getmetatable(obj).__index end

do
  local B = methods_of(C.buffer())
  --- Iterator over (index, item string).
  function B:items()
    local i, n = 0, #self
    return function()
      i = i + 1
      if i <= n then return i, self:get(i) end
    end
  end
  --- All items as a Lua array of strings.
  function B:list()
    local t = {}
    for i = 1, #self do t[i] = self:get(i) end
    return t
  end
end

--- NAL units of an Annex-B string, as an array of strings (header included,
-- start codes and trailing zeros removed).
function M.nals(s)
  local spans, out = C.nal_spans(s), {}
  for i = 1, #spans, 2 do out[#out + 1] = s:sub(spans[i], spans[i] + spans[i + 1] - 1) end
  return out
end

--- NAL type of a NAL string (H.264 by default).
function M.nal_type(nal, codec)
  local b = nal:byte(1)
  if codec == "h265" then return math.floor(b / 2) % 64 end
  return b % 32
end

--- Device framing (docs/framing.md): media type codes and flag bits.
M.FRAME_TYPES = {
  h264 = 0x01, h265 = 0x02,
  pcm16k = 0x10, pcm8k = 0x11, pcmu = 0x12, pcma = 0x13, opus = 0x14, aac = 0x15,
  control = 0x20, keepalive = 0x21,
}
M.FRAME_TYPE_NAMES = {}
for k, v in pairs(M.FRAME_TYPES) do M.FRAME_TYPE_NAMES[v] = k end
M.FRAME_FLAGS = { key = 1, discontinuity = 2, ["end"] = 4 }

local function frame_opts(o)
  if type(o) ~= "table" then error("frame: options table expected", 3) end
  local t = o.type
  if type(t) == "string" then
    t = M.FRAME_TYPES[t] or error("frame: unknown media type '" .. t .. "'", 3)
  end
  local flags = o.flags or 0
  for name, bit in pairs(M.FRAME_FLAGS) do
    if o[name] and math.floor(flags / bit) % 2 == 0 then flags = flags + bit end
  end
  return { type = t, flags = flags, stream = o.stream, seq = o.seq, ts = o.ts }
end

--- frame{ type = "h264"|code, key =, discontinuity =, ["end"] =, flags =, stream =,
-- seq =, ts = ms }, payload --> header .. payload
function M.frame(o, payload) return C.frame(frame_opts(o), payload) end
--- The 16-byte header alone (for writev-style sends).
function M.frame_header(o, len) return C.frame_header(frame_opts(o), len) end

local function b64(s)
  local crypto = require "wxhw.crypto"
  return crypto.base64_encode(s)
end

--- SDP text for one RTP video or audio stream, for peers such as ffmpeg.
-- opts: codec ("h264"|"h265"|"pcmu"|"pcma"|"opus"|"aac"), port, pt, address,
-- parameter_sets = { sps, pps } (h264) / { vps, sps, pps } (h265), config (aac hex), rate.
function M.sdp(opts)
  local codec, port = opts.codec or "h264", assert(opts.port, "sdp: port required")
  local addr, pt = opts.address or "127.0.0.1", opts.pt or 96
  local lines = {
    "v=0", "o=- 0 0 IN IP4 " .. addr, "s=wxhw", "c=IN IP4 " .. addr, "t=0 0",
  }
  local media, rtpmap, fmtp = "video", nil, nil
  if codec == "h264" then
    rtpmap = "H264/90000"
    fmtp = "packetization-mode=1"
    local ps = opts.parameter_sets
    if ps then fmtp = fmtp .. ";sprop-parameter-sets=" .. b64(ps[1]) .. "," .. b64(ps[2]) end
  elseif codec == "h265" then
    rtpmap = "H265/90000"
    local ps = opts.parameter_sets
    if ps then
      fmtp = "sprop-vps=" .. b64(ps[1]) .. ";sprop-sps=" .. b64(ps[2]) .. ";sprop-pps=" .. b64(ps[3])
    end
  elseif codec == "pcmu" or codec == "pcma" then
    media, pt = "audio", opts.pt or (codec == "pcmu" and 0 or 8)
    rtpmap = (codec == "pcmu" and "PCMU" or "PCMA") .. "/8000"
  elseif codec == "opus" then
    media, rtpmap = "audio", "opus/48000/2"
  elseif codec == "aac" then
    media, rtpmap = "audio", "MPEG4-GENERIC/" .. assert(opts.rate, "sdp: aac needs rate")
      .. "/" .. (opts.channels or 1)
    fmtp = "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
      .. "indexdeltalength=3;config=" .. assert(opts.config, "sdp: aac needs config")
  else
    error("sdp: unknown codec " .. tostring(codec), 2)
  end
  lines[#lines + 1] = ("m=%s %d RTP/AVP %d"):format(media, port, pt)
  lines[#lines + 1] = ("a=rtpmap:%d %s"):format(pt, rtpmap)
  if fmtp then lines[#lines + 1] = ("a=fmtp:%d %s"):format(pt, fmtp) end
  return table.concat(lines, "\r\n") .. "\r\n"
end

return M
