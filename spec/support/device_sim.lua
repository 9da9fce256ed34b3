--- A simulated cloud-to-cloud device for tests and benchmarks: replays a
-- recording in the device framing (records with millisecond timestamps) to
-- the relay over TCP at real-time pace, after a hello record.
--
--   lua5.4 spec/support/device_sim.lua HOST PORT SN MODEL_ID RECORDING
--          [--loop N] [--drop-video FROM COUNT] [--delay S]
--
-- --drop-video skips COUNT video records starting at the FROM-th (1-based)
-- one, as a lossy link would: the relay sees a sequence jump.
local M = {}

function M.read_recording(path)
  local frame = require "wxhw.media.frame"
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local d = frame.decoder()
  return assert(d:push(data))
end

--- Writes a recording of `seconds` of 640x480 H.264 at 15 fps (libx264, GOP
-- 15) and 8 kHz µ-law audio in 20 ms records; `ff` is spec/support/ffmpeg.
-- Returns the path and the number of video records.
function M.make_recording(ff, dir, seconds, o)
  o = o or {}
  local frame = require "wxhw.media.frame"
  local h264 = ff.h264(dir .. "/v.264", { size = o.size or "640x480", rate = o.fps or 15, seconds = seconds,
                                          gop = o.gop or 15 })
  local aus = ff.access_units(h264, "h264")
  ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:sample_rate=8000 -t %d -f mulaw %s")
    :format(seconds, dir .. "/a.ul"))
  local ulaw = ff.read(dir .. "/a.ul")
  local recs = {}
  for i, au in ipairs(aus) do recs[#recs + 1] = { math.floor((i - 1) * 1000 / (o.fps or 15)), frame.H264, au, 0 } end
  for k = 0, math.floor(#ulaw / 160) - 1 do
    recs[#recs + 1] = { k * 20, frame.PCMU, ulaw:sub(k * 160 + 1, k * 160 + 160), 1 }
  end
  table.sort(recs, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
  local out = {}
  for _, r in ipairs(recs) do out[#out + 1] = frame.encode(r[2], 0, r[4], 0, r[1], r[3]) end
  local path = dir .. "/rec.wxf"
  ff.write(path, table.concat(out))
  return path, #aus
end

function M.main(args)
  local socket = require "socket"
  local frame = require "wxhw.media.frame"
  local host, port, sn, model, rec = args[1], tonumber(args[2]), args[3], args[4], args[5]
  local loops, drop_from, drop_count, delay = 1, nil, 0, 0
  local i = 6
  while args[i] do
    if args[i] == "--loop" then loops = tonumber(args[i + 1]); i = i + 2
    elseif args[i] == "--drop-video" then drop_from, drop_count = tonumber(args[i + 1]), tonumber(args[i + 2]); i = i + 3
    elseif args[i] == "--delay" then delay = tonumber(args[i + 1]); i = i + 2
    else io.stderr:write("device_sim: unexpected ", args[i], "\n"); return 2 end
  end
  local records = M.read_recording(rec)
  if delay > 0 then socket.sleep(delay) end
  local c = assert(socket.connect(host, port))
  c:setoption("tcp-nodelay", true)
  assert(c:send(frame.control({ op = "hello", sn = sn, model_id = model })))
  local span = 0
  for _, r in ipairs(records) do if r.ts > span then span = r.ts end end
  span = span + 20
  local t0 = socket.gettime()
  local vseq, aseq, vindex = 0, 0, 0
  for loop = 0, loops - 1 do
    for _, r in ipairs(records) do
      local ts = r.ts + loop * span
      local due = t0 + ts / 1000
      local wait = due - socket.gettime()
      if wait > 0 then socket.sleep(wait) end
      if r.type == frame.H264 then
        vindex = vindex + 1
        vseq = (vseq + 1) % 65536
        local skip = drop_from and vindex >= drop_from and vindex < drop_from + drop_count
        if not skip then
          local ok = c:send(frame.encode(r.type, r.flags, r.stream, vseq, ts, r.data))
          if not ok then return 1 end
        end
      else
        aseq = (aseq + 1) % 65536
        local ok = c:send(frame.encode(r.type, r.flags, r.stream, aseq, ts, r.data))
        if not ok then return 1 end
      end
    end
  end
  c:close()
  return 0
end

if arg and arg[0] and arg[0]:match("device_sim%.lua$") and ... ~= "support.device_sim" then
  os.exit(M.main({ ... }))
end

return M
