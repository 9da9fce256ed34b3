-- bench/media driver (run by bench/media). Args: clip.264 total_mb scan_mb out.264
local media = require "wxhw.media"
local ref = require "media_ref"
local socket = require "socket"

local clip, total_mb, scan_mb, out = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local f = assert(io.open(clip, "rb"))
local data = f:read("*a")
f:close()

-- parameter sets and slice headers from the x264 clip; unique random bodies
local nals = media.nals(data)
local sps, pps, idr, p
for _, n in ipairs(nals) do
  local t = media.nal_type(n)
  if t == 7 then sps = sps or n elseif t == 8 then pps = pps or n
  elseif t == 5 then idr = idr or n:sub(1, 12) elseif t == 1 then p = p or n:sub(1, 12) end
end
assert(sps and pps and idr and p, "clip lacks SPS/PPS/IDR/P")
local frames = ref.gen_frames(total_mb * 1048576, sps, pps, idr, p, 12345)
local bytes = 0
for i = 1, #frames do bytes = bytes + #frames[i] end

local function best(n, fn)
  local b = math.huge
  for _ = 1, n do
    local t = fn()
    if t < b then b = t end
  end
  return b
end

local rounds = total_mb >= 256 and 3 or 2
local pk, buf = media.packetizer{ mtu = 1200 }, media.buffer()
local packets = 0
local t_pack = best(rounds, function()
  packets = 0
  local t0 = socket.gettime()
  for i = 1, #frames do packets = packets + pk:pack(frames[i], i * 3600, buf) end
  return socket.gettime() - t0
end)
local t_copy = best(rounds, function() return ref.memcpy_frames(frames) end)

-- scanning: one buffer of scan_mb
local parts, sb = {}, 0
for i = 1, #frames do
  parts[#parts + 1] = frames[i]
  sb = sb + #frames[i]
  if sb >= scan_mb * 1048576 then break end
end
local stream = table.concat(parts)
parts = nil -- luacheck: ignore 311 (let the parts be collected before timing)
local counted = 0
local t_scan = best(rounds, function()
  local t0 = socket.gettime()
  counted = media.nal_count(stream)
  return socket.gettime() - t0
end)
local t_chr = best(rounds, function() return (ref.memchr_count(stream)) end)

-- the whole stream to a file for ffmpeg
local o = assert(io.open(out, "wb"))
for i = 1, #frames do o:write(frames[i]) end
o:close()

local gb = bytes / 1e9
io.write(("stream %.0f MB, %d access units, %d RTP packets at MTU 1200, %d NALs scanned\n")
  :format(bytes / 1048576, #frames, packets, counted))
io.write(("RESULT pack %.6f copy %.6f scan %.6f memchr %.6f bytes %d scanbytes %d\n")
  :format(t_pack, t_copy, t_scan, t_chr, bytes, #stream))
local _ = gb
