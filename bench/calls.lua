-- bench/calls driver (see bench/calls).
local ff = require "support.ffmpeg"
local call = require "wxhw.call"
local supervisor = require "wxhw.call.supervisor"
local relay_mod = require "wxhw.relay"
local device_sim = require "support.device_sim"
local socket = require "socket"

local opt = {}
for _, a in ipairs(arg) do opt[a] = true end
local smoke = opt["--smoke"]
local secs = tonumber(os.getenv("WXHW_BENCH_SECS") or "") or (smoke and 2 or 5)
-- the supervisor's limit: its measured default, a number, or none (--no-limit)
local max_calls = tonumber(os.getenv("WXHW_BENCH_MAX_CALLS") or "")
if opt["--no-limit"] then max_calls = false end
if max_calls == nil then max_calls = smoke and 4 or supervisor.default_max_calls() end
local counts = {}
for n in (os.getenv("WXHW_BENCH_COUNTS") or (smoke and "1,4,6" or "8,16,24,32,48,64,128,200")):gmatch("%d+") do
  counts[#counts + 1] = tonumber(n)
end

local dir = ff.tmpdir()
local rec = device_sim.make_recording(ff, dir, secs)

local function load()
  local f = io.open("/proc/loadavg")
  local l = f and f:read("*l") or "?"
  if f then f:close() end
  return l:match("^(%S+ %S+ %S+)") or l
end

-- How a call ended, in words: refused at the push, carried (stats reported),
-- or lost (admitted, then aborted or silent).
local function outcome(reply, s, stats)
  if reply.errcode ~= 0 then return ("refused errcode %d (%s)"):format(reply.errcode, tostring(reply.errmsg)) end
  local st = s and s.state or "gone"
  if stats then return "carried, ended " .. st end
  return ("lost: %s%s, no worker stats"):format(st, s and s.error and (" (" .. s.error .. ")") or "")
end

local function round(n)
  local stats = {}
  local calls = call.new{ ring_timeout = 30 }
  local sup = assert(supervisor.new{ calls = calls, max_calls = max_calls,
    command = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.05" },
    on_stats = function(room, s) stats[room] = s end })
  local relay = relay_mod.new{ calls = calls, supervisor = sup, jitter_ms = 60 }
  local port = relay:listen("127.0.0.1", 0)
  local replies, admitted = {}, {}
  for i = 1, n do
    replies[i] = calls:join_voip_room{ Action = "join_voip_room", RoomId = "bench-" .. i, ServerToken = "st",
                                       SessionKey = "sk", Sn = "BENCH" .. i, ModelId = "bench", Payload = "" }
    if replies[i].errcode == 0 then admitted[#admitted + 1] = i end
  end
  local t0 = socket.gettime()
  relay:run{ seconds = 15, until_fn = function()
    for _, i in ipairs(admitted) do if calls:get("bench-" .. i).state ~= "TALKING" then return false end end
    return true
  end }
  local setup = socket.gettime() - t0
  -- only admitted calls stream: WeChat cancels a refused one
  local pids = {}
  for _, i in ipairs(admitted) do
    pids[#pids + 1] = ff.spawn(("env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='./build/5.4/?.so;;' "
      .. "lua5.4 spec/support/device_sim.lua 127.0.0.1 %d BENCH%d bench %s"):format(port, i, rec), "/dev/null")
  end
  local c0, w0 = os.clock(), socket.gettime()
  relay:run{ seconds = secs + 10, until_fn = function()
    if relay.counters.devices < #admitted then return false end
    for _, p in ipairs(pids) do if ff.alive(p) then return false end end
    return next(relay.devices) == nil
  end }
  local cpu, wall = os.clock() - c0, socket.gettime() - w0
  for _, i in ipairs(admitted) do calls:hangup("bench-" .. i, "device") end
  relay:run{ seconds = 10, until_fn = function() return sup:count() == 0 end }
  local r = { n = n, admitted = #admitted, late = 0, frames = 0, order = 0, cadence = 0, reported = 0,
              cpu = cpu / wall, setup = setup, outcomes = {}, load = load() }
  for _, s in pairs(stats) do
    r.reported = r.reported + 1
    r.late = r.late + s.late_frames
    r.frames = r.frames + s.video_frames + s.audio_frames
    r.order, r.cadence = r.order + s.order_errors, r.cadence + s.cadence_errors
  end
  r.late = r.frames > 0 and r.late / r.frames or (#admitted > 0 and 1 or 0)
  for i = 1, n do
    local o = outcome(replies[i], calls:get("bench-" .. i), stats["bench-" .. i])
    r.outcomes[o] = (r.outcomes[o] or 0) + 1
    if o:match("^lost") then r.lost = (r.lost or 0) + 1 end
  end
  for _, p in ipairs(pids) do ff.kill(p) end
  relay:close(); sup:close()
  return r
end

print(("media per call: 640x480 H.264 15 fps + 8 kHz G.711 -> 16 kHz PCM 20 ms; %d s per round; %d cores; "
  .. "max_calls %s"):format(secs, supervisor.default_max_calls() / supervisor.CALLS_PER_CORE, tostring(max_calls)))
local best
for _, n in ipairs(counts) do
  local r = round(n)
  print(("calls %3d: admitted %d, late %.2f%% of %d frames, order errors %d, cadence errors %d, workers reporting "
    .. "%d/%d, set-up %.1f s, relay CPU / real time %.3f, load %s"):format(r.n, r.admitted, r.late * 100, r.frames,
    r.order, r.cadence, r.reported, r.admitted, r.setup, r.cpu, r.load))
  local names = {}
  for o in pairs(r.outcomes) do names[#names + 1] = o end
  table.sort(names)
  for _, o in ipairs(names) do print(("           %4d %s"):format(r.outcomes[o], o)) end
  local good = r.late < 0.01 and r.order == 0 and r.cadence == 0 and r.reported == r.admitted and not r.lost
  if good and r.admitted == n then best = n end
  if not good and max_calls == false then break end -- unlimited: past the edge only more calls get lost
end
print(("largest concurrent call count with < 1%% late frames: %s"):format(best or "none"))
ff.cleanup(dir)
