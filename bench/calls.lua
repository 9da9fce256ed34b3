-- bench/calls driver (see bench/calls).
local ff = require "support.ffmpeg"
local call = require "wxhw.call"
local supervisor = require "wxhw.call.supervisor"
local relay_mod = require "wxhw.relay"
local device_sim = require "wxhw.relay.device_sim"
local socket = require "socket"

local smoke = arg[1] == "--smoke"
local secs = tonumber(os.getenv("WXHW_BENCH_SECS") or "") or (smoke and 2 or 5)
local counts = smoke and { 1, 4 } or { 1, 2, 4, 8, 12, 16, 24, 32 }

local dir = ff.tmpdir()
local rec = device_sim.make_recording(ff, dir, secs)

local function round(n)
  local stats, started = {}, 0
  local calls = call.new{ ring_timeout = 30 }
  local sup = assert(supervisor.new{ calls = calls, command = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.05" },
                                     on_stats = function(room, s) stats[room] = s end })
  local relay = relay_mod.new{ calls = calls, supervisor = sup, jitter_ms = 60 }
  local port = relay:listen("127.0.0.1", 0)
  for i = 1, n do
    calls:join_voip_room{ Action = "join_voip_room", RoomId = "bench-" .. i, ServerToken = "st", SessionKey = "sk",
                          Sn = "BENCH" .. i, ModelId = "bench", Payload = "" }
  end
  relay:run{ seconds = 15, until_fn = function()
    for i = 1, n do if calls:get("bench-" .. i).state ~= "TALKING" then return false end end
    return true
  end }
  local pids = {}
  for i = 1, n do
    pids[i] = ff.spawn(("env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' "
      .. "lua5.4 lua/wxhw/relay/device_sim.lua 127.0.0.1 %d BENCH%d bench %s"):format(port, i, rec), "/dev/null")
    started = started + 1
  end
  local c0, w0 = os.clock(), socket.gettime()
  relay:run{ seconds = secs + 10, until_fn = function()
    if relay.counters.devices < n then return false end
    for _, p in ipairs(pids) do if ff.alive(p) then return false end end
    return next(relay.devices) == nil
  end }
  local cpu, wall = os.clock() - c0, socket.gettime() - w0
  for i = 1, n do calls:hangup("bench-" .. i, "device") end
  relay:run{ seconds = 5, until_fn = function()
    local k = 0
    for _ in pairs(stats) do k = k + 1 end
    return k == n
  end }
  local late, frames, order, cadence, got = 0, 0, 0, 0, 0
  for _, s in pairs(stats) do
    got = got + 1
    late = late + s.late_frames
    frames = frames + s.video_frames + s.audio_frames
    order, cadence = order + s.order_errors, cadence + s.cadence_errors
  end
  for _, p in ipairs(pids) do ff.kill(p) end
  relay:close(); sup:close()
  return { n = n, late = frames > 0 and late / frames or 1, frames = frames, order = order, cadence = cadence,
           cpu = cpu / wall, reported = got }
end

print(("media per call: 640x480 H.264 15 fps + 8 kHz G.711 -> 16 kHz PCM 20 ms; %d s per round; %d cores"):format(secs, 2))
local best
for _, n in ipairs(counts) do
  local r = round(n)
  print(("calls %3d: late %.2f%% of %d frames, order errors %d, cadence errors %d, workers reporting %d/%d, "
    .. "relay CPU / real time %.3f (%.4f per call)"):format(r.n, r.late * 100, r.frames, r.order, r.cadence,
    r.reported, r.n, r.cpu, r.cpu / r.n))
  if r.late < 0.01 and r.order == 0 and r.cadence == 0 and r.reported == n then best = n else break end
end
print(("largest concurrent call count with < 1%% late frames: %s"):format(best or "none"))
ff.cleanup(dir)
