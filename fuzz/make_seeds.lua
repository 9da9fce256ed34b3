-- Writes small valid inputs for each fuzz target into fuzz/seeds/ (run from
-- the repo root after `make`: lua5.4 fuzz/make_seeds.lua).
package.path = "./lua/?.lua;" .. package.path
package.cpath = "./build/5.4/?.so;" .. package.cpath
local media = require "wxhw.media"

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end
local function nal(hdr, len)
  local t = { hdr }
  for i = 1, len - #hdr do t[#t + 1] = string.char(i % 251 + 1) end
  return table.concat(t)
end
local function be16(n) return string.char(math.floor(n / 256) % 256, n % 256) end

local buf = media.buffer()
for _, codec in ipairs({ "h264", "h265" }) do
  local au
  if codec == "h264" then
    au = "\0\0\0\1\103\66\192\41\140\141\65\2\36\3\194\33\26\128\0\0\0\1\104\206\60\128\0\0\1"
      .. nal("\101", 700)
  else
    au = "\0\0\0\1\64\1\12\1\0\0\1\66\1\1\1\96\0\0\0\144\0\0\1\68\1\193\114\0\0\1" .. nal("\38\1", 700)
  end
  write("fuzz/seeds/annexb/" .. codec, string.char(codec == "h265" and 1 or 0, 0) .. au)
  local pk = media.packetizer{ codec = codec, mtu = 300, seq = 65530 }
  local n = pk:pack(au, 0, buf)
  local t = { string.char(codec == "h265" and 0x41 or 0x40) }
  for i = 1, n do local p = buf:get(i); t[#t + 1] = be16(#p) .. p end
  write("fuzz/seeds/rtp_video/" .. codec, table.concat(t))
  local mux = media.flv_muxer{ video = codec, audio = false }
  local parts = {}
  mux:header(buf); parts[1] = buf:data()
  mux:video(au, 0, 0, buf); parts[2] = buf:data()
  write("fuzz/seeds/flv_read/" .. codec, table.concat(parts))
end
local raw = nal("\33", 40)
local len = 7 + #raw
local adts = string.char(0xff, 0xf1, 0x60, 0x40 + math.floor(len / 2048), math.floor(len / 8) % 256,
  (len % 8) * 32 + 31, 0xfc) .. raw
local ap = media.audio_packetizer{ codec = "aac", pt = 97 }
ap:pack(adts, buf)
write("fuzz/seeds/rtp_audio/aac", be16(#buf:get(1)) .. buf:get(1) .. be16(#adts) .. adts
  .. be16(3) .. "\252\1\2")
write("fuzz/seeds/deframer/two", "\22" .. media.frame({ type = "h264", key = true, seq = 1, ts = 5 },
  nal("\101", 60)) .. media.frame({ type = "pcm16k", ts = 25 }, string.rep("\0", 64)))
print("seeds written")
