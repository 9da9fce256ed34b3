--- ffmpeg/ffprobe as an independent peer for the media specs (Lua 5.4 and
-- LuaJIT). Streams are generated from lavfi sources into a temp dir; ffmpeg
-- processes run in the background are stopped by pid.
--
--   local ff = require "support.ffmpeg"
--   local dir = ff.tmpdir()                  -- removed by ff.cleanup(dir)
--   ff.run("ffmpeg ...")                     --> ok, output (stdout+stderr)
--   ff.h264(dir .. "/a.264", { seconds = 1 })
--   ff.packets(path)                         --> { {pos=, size=, pts=, key=}, ... }
--   local pid = ff.spawn(cmd, logfile) ; ff.wait(pid, seconds) ; ff.kill(pid)
local socket = require "socket"

local M = {}

local files = require "support.files"
local q = files.quote
M.quote, M.read, M.write = files.quote, files.read, files.write
function M.tmpdir() return files.tmpdir("wxhw-media") end

function M.cleanup(dir)
  if dir and dir:match("^/tmp/wxhw%-media%.") then os.execute("rm -rf " .. q(dir)) end
end

--- Runs a shell command; returns ok, combined output.
function M.run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"::rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("::rc=(%d+)%s*$"))
  return rc == 0, (out:gsub("::rc=%d+%s*$", ""))
end

function M.must(cmd)
  local ok, out = M.run(cmd)
  if not ok then error("command failed: " .. cmd .. "\n" .. out, 2) end
  return out
end

local lavfi = "-f lavfi -i testsrc2=size=%s:rate=%d"

--- Small H.264 Annex-B stream from a test source (no B-frames, GOP `gop`).
function M.h264(path, o)
  o = o or {}
  M.must(("ffmpeg -nostdin -v error -y " .. lavfi .. " -t %s -c:v libx264 -preset ultrafast "
    .. "-tune zerolatency -g %d -bf 0 -pix_fmt yuv420p %s -f h264 %s")
    :format(o.size or "320x240", o.rate or 25, o.seconds or 1, o.gop or 10,
      o.extra or "", q(path)))
  return path
end

function M.h265(path, o)
  o = o or {}
  M.must(("ffmpeg -nostdin -v error -y " .. lavfi .. " -t %s -c:v libx265 -preset ultrafast "
    .. "-x265-params log-level=error:keyint=%d:bframes=0 -pix_fmt yuv420p -f hevc %s")
    :format(o.size or "320x240", o.rate or 25, o.seconds or 1, o.gop or 10, q(path)))
  return path
end

--- Packets (access units) as ffprobe's parser splits the file.
function M.packets(path, fmt)
  local out = M.must(("ffprobe -v error %s -show_entries packet=pos,size,pts,dts,flags "
    .. "-of csv=p=0 %s"):format(fmt and ("-f " .. fmt) or "", q(path)))
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local f = {}
    for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
    -- csv order follows ffprobe's field order: pts, dts, size, pos, flags
    t[#t + 1] = { pts = tonumber(f[1]), dts = tonumber(f[2]), size = tonumber(f[3]),
                  pos = tonumber(f[4]), key = (f[5] or ""):find("K", 1, true) ~= nil }
  end
  return t
end

--- Access units of an Annex-B file as strings, split where ffprobe splits.
function M.access_units(path, fmt)
  local data, aus = M.read(path), {}
  for _, p in ipairs(M.packets(path, fmt)) do
    aus[#aus + 1] = data:sub(p.pos + 1, p.pos + p.size)
  end
  return aus, data
end

--- Hash column of `-f framemd5` for an input (extra input args allowed).
--- The per-frame hashes of framemd5 output text.
function M.framemd5_hashes(text)
  local h = {}
  for line in text:gmatch("[^\n]+") do
    if not line:match("^#") then h[#h + 1] = line:match("([0-9a-f]+)%s*$") end
  end
  return h
end

function M.framemd5(input_args)
  return M.framemd5_hashes(M.must("ffmpeg -nostdin -v error " .. input_args .. " -f framemd5 -"))
end

--- NAL units of an Annex-B string, split with plain string search (independent
-- of the C scanner): on every 00 00 01, trailing zero bytes trimmed.
function M.split_nals(s)
  local nals, i = {}, 1
  local first = s:find("\0\0\1", 1, true)
  if not first then return nals end
  i = first + 3
  while true do
    local j = s:find("\0\0\1", i, true)
    local nal = s:sub(i, (j or #s + 1) - 1):gsub("%z+$", "")
    if #nal > 0 then nals[#nals + 1] = nal end
    if not j then break end
    i = j + 3
  end
  return nals
end

--- Starts a background command; returns its pid.
function M.spawn(cmd, log)
  local p = io.popen("sh -c " .. q("exec " .. cmd .. " >" .. q(log or "/dev/null") .. " 2>&1")
    .. " & echo $!")
  local pid = tonumber(p:read("*l"))
  p:close()
  return pid
end

function M.alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
    or os.execute("kill -0 " .. pid .. " 2>/dev/null") == 0
end

function M.wait(pid, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  while socket.gettime() < deadline do
    if not M.alive(pid) then return true end
    socket.sleep(0.05)
  end
  return false
end

function M.kill(pid, sig)
  if pid then os.execute("kill -" .. (sig or "TERM") .. " " .. pid .. " 2>/dev/null") end
end

--- A free UDP port pair (even port p, p+1 free too) on loopback, for a
-- peer to bind. Picked below the kernel's ephemeral range so no socket the
-- kernel numbers itself (other specs' clients) can take it before the peer
-- binds; specs running side by side can still collide, so callers retry.
local rng_seeded = false
function M.udp_port_pair()
  if not rng_seeded then
    local f = io.open("/dev/urandom", "rb")
    local b = f:read(4); f:close()
    math.randomseed(b:byte(1) * 16777216 + b:byte(2) * 65536 + b:byte(3) * 256 + b:byte(4))
    rng_seeded = true
  end
  for _ = 1, 200 do
    local port = 2 * math.random(10000, 16000) -- 20000..32000
    local x, y = socket.udp(), socket.udp()
    local ok1 = x:setsockname("127.0.0.1", port)
    local ok2 = y:setsockname("127.0.0.1", port + 1)
    x:close(); y:close()
    if ok1 and ok2 then return port end
  end
  error("no free UDP port pair")
end

--- Waits until something else has bound UDP `port` on loopback.
function M.wait_bound(port, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  while socket.gettime() < deadline do
    local s = socket.udp()
    local ok = s:setsockname("127.0.0.1", port)
    s:close()
    if not ok then return true end
    socket.sleep(0.02)
  end
  return false
end

--- Receives UDP datagrams on `sock` until `idle` seconds pass with none and
-- `done()` (if given) says the sender finished.
function M.collect(sock, idle, done)
  local pkts = {}
  sock:settimeout(0.05)
  local last = socket.gettime()
  while true do
    local d = sock:receive(65536)
    if d then
      pkts[#pkts + 1] = d
      last = socket.gettime()
    elseif socket.gettime() - last > (idle or 1) and (not done or done()) then
      break
    end
  end
  return pkts
end

--- Runs `ffmpeg <input_args> -f rtp rtp://127.0.0.1:PORT<query>` in real time and
-- returns the RTP packets it sent (RTCP on PORT+1 is not collected).
function M.capture_rtp(input_args, query, dir)
  local port = M.udp_port_pair()
  local sock = socket.udp()
  assert(sock:setsockname("127.0.0.1", port))
  local pid = M.spawn(("ffmpeg -nostdin -v error -re %s -f rtp 'rtp://127.0.0.1:%d%s'")
    :format(input_args, port, query or ""), (dir or "/tmp") .. "/capture.log")
  local ok, pkts = pcall(M.collect, sock, 1.0, function() return not M.alive(pid) end)
  M.kill(pid)
  sock:close()
  if not ok then error(pkts, 2) end
  return pkts
end

local function feed_rtp_once(sdp_fn, packets, ssrc, output_args, dir)
  local port = M.udp_port_pair()
  local sdp = dir .. "/feed.sdp"
  M.write(sdp, sdp_fn(port))
  local log = dir .. "/feed.log"
  local pid = M.spawn(("ffmpeg -nostdin -v error -protocol_whitelist file,udp,rtp -i %s %s")
    :format(M.quote(sdp), output_args), log)
  local ok, err = pcall(function()
    assert(M.wait_bound(port, 10), "ffmpeg did not open its RTP port")
    local s = socket.udp()
    assert(s:setpeername("127.0.0.1", port))
    for i, p in ipairs(packets) do
      assert(s:send(p))
      if i % 20 == 0 then socket.sleep(0.002) end
    end
    socket.sleep(0.2)
    -- RTCP BYE (ffmpeg ignores RTCP shorter than 12 bytes); repeated because
    -- one may be consumed while ffmpeg still probes the stream
    local r = socket.udp()
    assert(r:setpeername("127.0.0.1", port + 1))
    local bye = string.char(0x81, 203, 0, 2, math.floor(ssrc / 16777216) % 256,
      math.floor(ssrc / 65536) % 256, math.floor(ssrc / 256) % 256, ssrc % 256, 0, 0, 0, 0)
    for _ = 1, 100 do
      if not M.alive(pid) then break end
      r:send(bye)
      socket.sleep(0.1)
    end
    assert(M.wait(pid, 10), "ffmpeg did not finish")
    -- a port held by someone else can look like ffmpeg's own
    assert(not M.read(log):find("bind failed", 1, true), "ffmpeg could not bind its ports")
  end)
  M.kill(pid)
  return ok, ok and M.read(log) or tostring(err) .. "\n" .. M.read(log)
end

--- Sends RTP `packets` to an ffmpeg reading `sdp_text` (the SDP's port is
-- replaced by a free one) and writing `output_args`; ends it with RTCP BYE.
-- A port taken between the choice and ffmpeg's bind is retried with another.
-- Returns true or false, log.
function M.feed_rtp(sdp_fn, packets, ssrc, output_args, dir)
  local ok, log
  for _ = 1, 5 do
    ok, log = feed_rtp_once(sdp_fn, packets, ssrc, output_args, dir)
    if ok or not log:find("bind failed", 1, true) then break end
  end
  return ok, log
end

return M
