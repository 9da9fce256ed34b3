--- `wxhw call-worker --simulate`: the reference call worker. It stands in for
-- a process running WeChat's closed cloud server SDK: it connects to the
-- supervisor (WXHW_CALL_SOCKET / _ROOM / _TOKEN), receives the session
-- credentials, reports the SDK's status events as the simulated WeChat user
-- behaves, consumes media frames at real-time pace, checks their order and
-- cadence, and reports statistics. See docs/call-worker.md.
local socket = require "socket"
local unix = require "socket.unix"
local cjson = require "cjson.safe"
local clock = require "wxhw.clock"
local frame = require "wxhw.media.frame"

local M = {}

local usage = [[
usage: wxhw call-worker --simulate [options]
  --answer-after S        the user answers after S seconds (default 0.2)
  --no-answer             the user never answers (ring timeout applies)
  --reject-after S        the user rejects while ringing
  --busy                  the user is busy (status BUSY)
  --user-hangup-after S   the user hangs up S seconds after answering
  --crash-after S         exit abruptly S seconds after joining (no status)
  --late-ms N             arrival later than N ms counts as late (default 60)
  --stats FILE            also write the final statistics (JSON) to FILE
environment: WXHW_CALL_SOCKET, WXHW_CALL_ROOM, WXHW_CALL_TOKEN (set by the supervisor)]]

local apply_payload
local ST = { CALLING = 1, TALKING = 2, REJECTED = 3, HANGUP_BY_CALLEE = 6, BUSY = 8 }

local NUMBERS = { ["answer-after"] = true, ["reject-after"] = true, ["user-hangup-after"] = true,
  ["crash-after"] = true, ["late-ms"] = true }

local function parse(args)
  local raw, pos = require("wxhw.cli.args").parse(args, {
    flags = { simulate = true, ["no-answer"] = true, busy = true, help = true },
    values = { ["answer-after"] = true, ["reject-after"] = true, ["user-hangup-after"] = true,
      ["crash-after"] = true, ["late-ms"] = true, stats = true } })
  if not raw then return nil, pos end
  if pos[1] then return nil, "unexpected argument '" .. pos[1] .. "'" end
  local o = { answer_after = 0.2, late_ms = 60 }
  for k, v in pairs(raw) do
    if NUMBERS[k] then
      v = tonumber(v)
      if not v then return nil, "bad number for --" .. k end
    end
    o[k:gsub("%-", "_")] = v
  end
  return o
end

-- Stream checker ------------------------------------------------------------

local function nal_types(au)
  local t, pos = {}, 1
  while true do
    local a, b = au:find("\0\0\1", pos, true)
    if not a then break end
    local nb = au:byte(b + 1)
    if nb then t[#t + 1] = nb % 32 end
    pos = b + 1
  end
  return t
end
M.nal_types = nal_types

--- Checks media as the SDK would need it; exposed for tests.
function M.checker(late_ms)
  local c = { video_frames = 0, audio_frames = 0, order_errors = 0, cadence_errors = 0, late_frames = 0,
              gaps = 0, resumed_at_idr = 0, max_late_ms = 0, bytes = 0, seq_errors = 0, first_video = nil,
              late_ms = late_ms or 60 }
  local need_key, last_vts, last_ats, base = true, nil, nil, {}
  local last_seq = {}
  function c.frame(fr, now)
    c.bytes = c.bytes + #fr.data
    local gap = fr.gap and true or false
    if gap then c.gaps = c.gaps + 1 end
    local ls = last_seq[fr.stream]
    if ls and not gap and fr.seq ~= (ls + 1) % 65536 then c.seq_errors = c.seq_errors + 1 end
    last_seq[fr.stream] = fr.seq
    -- pacing: a frame's delay (arrival minus timestamp) against the smallest
    -- delay seen on its stream, i.e. the jitter the SDK would have to absorb
    local delay = now * 1000 - fr.ts
    local b = base[fr.stream]
    if not b or delay < b then b = delay; base[fr.stream] = b end
    local late = delay - b
    if late > c.max_late_ms then c.max_late_ms = late end
    if late > c.late_ms then c.late_frames = c.late_frames + 1 end
    if fr.type == frame.H264 then
      c.video_frames = c.video_frames + 1
      local types = nal_types(fr.data)
      if gap then need_key = true end
      if need_key then
        -- SPS (7), PPS (8) then IDR (5) first, initially and after a gap
        local s7, s8, s5
        for i, t in ipairs(types) do
          if t == 7 and not s7 then s7 = i elseif t == 8 and not s8 then s8 = i elseif t == 5 and not s5 then s5 = i end
        end
        if s7 and s8 and s5 and s7 < s8 and s8 < s5 then
          if c.first_video == nil then c.first_video = table.concat(types, ",") end
          if gap then c.resumed_at_idr = c.resumed_at_idr + 1 end
          need_key = false
        else
          c.order_errors = c.order_errors + 1
        end
      end
      if last_vts and fr.ts < last_vts then c.order_errors = c.order_errors + 1 end
      last_vts = fr.ts
    elseif fr.type == frame.PCM16K then
      c.audio_frames = c.audio_frames + 1
      if #fr.data ~= 640 then c.cadence_errors = c.cadence_errors + 1 end
      if last_ats and not gap and fr.ts - last_ats ~= 20 then c.cadence_errors = c.cadence_errors + 1 end
      last_ats = fr.ts
    end
  end
  function c.report()
    local r = {}
    for k, v in pairs(c) do if type(v) ~= "function" then r[k] = v end end
    r.late_ratio = (c.video_frames + c.audio_frames) > 0 and c.late_frames / (c.video_frames + c.audio_frames) or 0
    return r
  end
  return c
end

-- The worker -------------------------------------------------------------------

-- A payload "sim:reject_after=0.1;no_answer=1" scripts the simulated user
-- per call (tests and the emulator); flags on the command line are defaults.
local PAYLOAD_KEYS = { answer_after = true, reject_after = true, user_hangup_after = true, crash_after = true,
                       no_answer = true, busy = true }
apply_payload = function(o, payload)
  if type(payload) ~= "string" or payload:sub(1, 4) ~= "sim:" then return end
  for k, v in payload:sub(5):gmatch("([%w_]+)=([^;]*)") do
    if PAYLOAD_KEYS[k] then
      if k == "no_answer" or k == "busy" then o[k] = v == "1" else o[k] = tonumber(v) end
    end
  end
end

-- Connects to the supervisor and sends the hello. A unix connect that meets
-- a full listen backlog fails with EAGAIN, which luasocket reports as a
-- success: only the first send says "not connected". Such a worker used to
-- wait for a join that never came and its call was aborted; it tries again
-- until the supervisor takes it (or `wait` seconds pass).
local function connect(path, hello, wait)
  local deadline, delay = clock.monotonic() + wait, 0.01
  while true do
    local c = unix.stream()
    local ok, err = c:connect(path)
    if ok then
      local n, serr = c:send(hello)
      if n then return c end
      err = serr
    end
    c:close()
    if clock.monotonic() >= deadline then return nil, err end
    clock.sleep(delay)
    delay = math.min(delay * 2, 0.2)
  end
end
M.connect = connect

local function simulate(o)
  local path, room, token = os.getenv("WXHW_CALL_SOCKET"), os.getenv("WXHW_CALL_ROOM"), os.getenv("WXHW_CALL_TOKEN")
  if not (path and room and token) then
    io.stderr:write("call-worker: WXHW_CALL_SOCKET, WXHW_CALL_ROOM and WXHW_CALL_TOKEN must be set\n")
    return 2
  end
  local seq = 1
  local c, err = connect(path, frame.control({ op = "hello", room_id = room, token = token, simulate = true }, seq), 5)
  if not c then io.stderr:write("call-worker: connect: ", tostring(err), "\n"); return 1 end
  c:settimeout(0)
  local out = ""
  local function send(msg)
    seq = (seq + 1) % 65536
    out = out .. frame.control(msg, seq)
  end
  local function flush(block)
    while #out > 0 do
      local n, e, last = c:send(out)
      local sent = n or last or 0
      out = out:sub(sent + 1)
      if e == "closed" then return false end
      if not block then break end
      if #out > 0 then socket.select(nil, { c }, 0.05) end
    end
    return true
  end
  local dec = frame.decoder()
  local chk = M.checker(o.late_ms)
  local joined_at, state, talk_at, session
  local function status(name, reason)
    state = name
    send({ op = "status", status = ST[name], reason = reason })
  end
  local function finish(code)
    local r = chk.report()
    r.op, r.room_id, r.state = "stats", room, state
    r.credentials_ok = session ~= nil and type(session.server_token) == "string" and session.server_token ~= ""
    send(r)
    flush(true)
    if o.stats then
      local f = io.open(o.stats, "w")
      if f then f:write(cjson.encode(r)); f:close() end
    end
    c:close()
    return code
  end
  while true do
    local rd = socket.select({ c }, nil, 0.005)
    local now = clock.now() -- wall: frame timestamps are wall milliseconds
    if rd and rd[1] then
      local data, e, partial = c:receive(65536)
      data = data or partial
      if data and #data > 0 then
        local frames, why = dec:push(data)
        if not frames then io.stderr:write("call-worker: ", why, "\n"); return 1 end
        for _, fr in ipairs(frames) do
          local m = frame.decode_control(fr)
          if m then
            if m.op == "join" then
              session, joined_at = m, now
              apply_payload(o, m.payload)
              if o.busy then status("BUSY") else status("CALLING") end
            elseif m.op == "hangup" then
              state = "HANGUP"
            elseif m.op == "stop" then
              return finish(0)
            end
          elseif state == "TALKING" then
            chk.frame(fr, now)
          end
        end
      end
      if e == "closed" then return finish(0) end
    end
    if joined_at then
      local t = now - joined_at
      if o.crash_after and t >= o.crash_after then os.exit(3) end
      if state == "CALLING" then
        if o.reject_after and t >= o.reject_after then status("REJECTED", 11)
        elseif not o.no_answer and not o.reject_after and t >= o.answer_after then
          status("TALKING"); talk_at = now
        end
      elseif state == "TALKING" and o.user_hangup_after and now - talk_at >= o.user_hangup_after then
        status("HANGUP_BY_CALLEE", 1)
      end
    end
    if not flush(false) then return finish(1) end
  end
end

function M.run(args)
  local o, err = parse(args)
  if not o then io.stderr:write("call-worker: ", err, "\n", usage, "\n"); return 2 end
  if o.help then print(usage); return 0 end
  if not o.simulate then
    io.stderr:write("call-worker: only --simulate is built in; wrap the real SDK as docs/call-worker.md shows\n")
    return 2
  end
  return simulate(o)
end

return M
