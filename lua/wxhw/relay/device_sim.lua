--- A simulated cloud-to-cloud device for tests and benchmarks: replays a
-- recording in the device framing (records with millisecond timestamps) to
-- the relay over TCP at real-time pace, after a hello record.
--
--   lua5.4 lua/wxhw/relay/device_sim.lua HOST PORT SN MODEL_ID RECORDING
--          [--loop N] [--drop-video FROM COUNT] [--delay S]
--
-- --drop-video skips COUNT video records starting at the FROM-th (1-based)
-- one, as a lossy link would: the relay sees a sequence jump.
local M = {}

function M.read_recording(path)
  local frame = require "wxhw.relay.frame"
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local d = frame.decoder()
  return assert(d:push(data))
end

function M.main(args)
  local socket = require "socket"
  local frame = require "wxhw.relay.frame"
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
      local skip = false
      if r.type == frame.H264 then
        vindex = vindex + 1
        vseq = (vseq + 1) % 65536
        skip = drop_from and vindex >= drop_from and vindex < drop_from + drop_count
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

if arg and arg[0] and arg[0]:match("device_sim%.lua$") and ... ~= "wxhw.relay.device_sim" then
  os.exit(M.main({ ... }))
end

return M
